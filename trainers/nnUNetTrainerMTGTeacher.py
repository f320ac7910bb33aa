"""The MTG teacher: modality masking + latent alignment to an N(0, I) anchor (DESIGN.md section 3).

loss = nnU-Net's loss + lambda_align * KL(q(z | x * m) || N(0, I)) at the aligned encoder stages.
"""
import torch

from nnunetv2_mtg.alignment import AlignedUNet, check_plans_network, unwrap
from nnunetv2_mtg.loss_terms import LossTermsMixin
from nnunetv2_mtg.schedules import FixedEpochs, SmokeSchedule
from nnunetv2_mtg.trainers.nnUNetTrainerModalityDropout import nnUNetTrainerModalityDropout


class nnUNetTrainerMTGTeacher(LossTermsMixin, nnUNetTrainerModalityDropout):
    lambda_align = 0.1
    aligned_stages = (-1,)  # encoder stages with an alignment head; -1 = bottleneck
    loss_terms = ("kl_align",)

    def __init__(self, plans: dict, configuration: str, fold: int, dataset_json: dict,
                 device: torch.device = torch.device("cuda")):
        check_plans_network(plans, configuration)
        super().__init__(plans, configuration, fold, dataset_json, device)

    @classmethod
    def build_network_architecture(cls, plans_manager, configuration_manager, num_input_channels: int,
                                   num_output_channels: int, enable_deep_supervision: bool = True) -> AlignedUNet:
        network = super().build_network_architecture(plans_manager, configuration_manager, num_input_channels,
                                                     num_output_channels, enable_deep_supervision)
        return AlignedUNet(network, cls.aligned_stages)

    def loss_term_functions(self) -> dict:
        return {"kl_align": (self.lambda_align, lambda output: unwrap(self.network).alignment_loss())}


class nnUNetTrainerMTGTeacher_smoke(SmokeSchedule, nnUNetTrainerMTGTeacher):
    pass


class nnUNetTrainerMTGTeacher_5epochs(FixedEpochs, nnUNetTrainerMTGTeacher):
    epochs = 5


class nnUNetTrainerMTGTeacher_50epochs(FixedEpochs, nnUNetTrainerMTGTeacher):
    epochs = 50


class nnUNetTrainerMTGTeacher_250epochs(FixedEpochs, nnUNetTrainerMTGTeacher):
    epochs = 250
