"""Training-length variants as mixins, so each trainer's `_smoke` / `_5epochs` / ... is a two-line subclass.

nnU-Net sets `num_epochs` and friends in `nnUNetTrainer.__init__`; these mixins overwrite them after it.
"""
from __future__ import annotations

import torch


class FixedEpochs:
    """Train for the class attribute `epochs` epochs (nnU-Net's own `_5epochs`-style variants)."""

    epochs: int = 1000

    # nnU-Net records the constructor's arguments by name, so the signature must stay nnU-Net's
    def __init__(self, plans: dict, configuration: str, fold: int, dataset_json: dict,
                 device: torch.device = torch.device("cuda")):
        super().__init__(plans, configuration, fold, dataset_json, device)
        self.num_epochs = self.epochs


class SmokeSchedule:
    """A CPU check of the whole pipeline: 2 epochs x 10 iterations, 2 validation iterations, and a
    final validation without test-time mirroring (the slow part on a CPU)."""

    def __init__(self, plans: dict, configuration: str, fold: int, dataset_json: dict,
                 device: torch.device = torch.device("cuda")):
        super().__init__(plans, configuration, fold, dataset_json, device)
        self.num_epochs = 2
        self.num_iterations_per_epoch = 10
        self.num_val_iterations_per_epoch = 2

    def configure_rotation_dummyDA_mirroring_and_inital_patch_size(self):
        out = super().configure_rotation_dummyDA_mirroring_and_inital_patch_size()
        self.inference_allowed_mirroring_axes = None
        return out
