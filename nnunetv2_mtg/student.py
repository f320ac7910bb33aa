"""Student wiring: a frozen teacher sees the full patch, the student the same patch with modalities masked.

The mask is drawn on the device per sample by the same sampler as the masking transform (which is
therefore left out of the student's data loader). The teacher is an attribute of the trainer, not a
submodule of the network: it is not in the optimizer, not wrapped by DDP (each rank holds its own
copy), and not in the student's checkpoint.
"""
from __future__ import annotations

from contextlib import nullcontext
from dataclasses import dataclass

import torch
from nnunetv2.utilities.plans_handling.plans_handler import PlansManager

from nnunetv2_mtg.alignment import unwrap
from nnunetv2_mtg.distillation import kd_loss, latent_kl, stem_feature_distance
from nnunetv2_mtg.forms import read_form
from nnunetv2_mtg.masking import apply_mask
from nnunetv2_mtg.teacher import find_teacher_checkpoint, load_teacher


@dataclass(frozen=True)
class TeacherView:
    """What the frozen teacher computed on the unmasked patch of the current training step: its full-resolution
    output, the latents of its Gaussian heads and its stem's output (None where it has none)."""

    output: torch.Tensor
    latents: dict | None
    stem: torch.Tensor | None


class DistillationMixin:
    """Put before an nnU-Net trainer that has LossTermsMixin. Class attributes: `teacher_trainer` (the
    paired teacher's trainer name), `lambda_kd`, `kd_temperature`, `kd_t_squared`, `kd_class_mean`, and `lambda_lat` (the
    latent terms of aligned students: KL between the Gaussian heads' latents, distance between the stem
    features, on `stem_latent_pool`-voxel blocks: they need a teacher of the same alignment form). With
    `start_from_teacher`, training starts from the teacher's weights, output layers included (the student's network
    is the teacher's); a resumed run (--c) continues from its own checkpoint."""

    teacher_trainer: str
    lambda_kd = 1.0
    kd_temperature = 2.0
    kd_t_squared = True
    kd_class_mean = False
    lambda_lat = 0.0
    stem_latent_pool = 2
    mask_in_data_loader = False
    start_from_teacher = False

    def __init__(self, plans: dict, configuration: str, fold: int, dataset_json: dict,
                 device: torch.device = torch.device("cuda")):
        # everything about the teacher is checked before nnU-Net creates the output folder
        arch = PlansManager(plans).get_configuration(configuration).network_arch_init_kwargs
        self.form = read_form(type(self), arch, len(dataset_json["channel_names"]))
        self.teacher_checkpoint = find_teacher_checkpoint(type(self).__name__, self.teacher_trainer, plans,
                                                          configuration, fold)
        self.teacher_network = load_teacher(self.teacher_checkpoint, plans, configuration, fold, dataset_json,
                                            (type(self).__name__, self.teacher_trainer, self.form)
                                            if self.lambda_lat else None)
        teacher_stem = getattr(self.teacher_network, "stem", None)
        if teacher_stem is not None:  # the frozen teacher runs in eval mode, where a stem keeps nothing by default
            teacher_stem.retain = True
        self.teacher_view: TeacherView | None = None  # set for the duration of a training step only
        super().__init__(plans, configuration, fold, dataset_json, device)
        self.print_to_log_file(f"teacher: {self.teacher_checkpoint}")

    def initialize(self):
        super().initialize()
        if self.start_from_teacher:
            unwrap(self.network).load_state_dict(unwrap(self.teacher_network).state_dict())
            self.print_to_log_file("started from the teacher's weights")
        self.teacher_network.to(self.device)
        if self._do_i_compile():  # where nnU-Net compiles the student, an uncompiled teacher would dominate the step
            self.teacher_network = torch.compile(self.teacher_network)

    def train_step(self, batch: dict) -> dict:
        data = batch["data"].to(self.device, non_blocking=True)
        masks = self.subset_sampler.draw_torch(data.shape[0], self.device)
        autocast = torch.autocast(self.device.type) if self.device.type == "cuda" else nullcontext()
        with torch.no_grad(), autocast:
            output = self.teacher_network(data)
            teacher = unwrap(self.teacher_network)
            stem = getattr(teacher, "stem", None)
            self.teacher_view = TeacherView(output, getattr(teacher, "latents", None),
                                            stem.output if stem is not None else None)
        try:
            return super().train_step({**batch, "data": apply_mask(data, masks)})
        finally:
            self.teacher_view = None

    def loss_term_functions(self) -> dict:
        terms = dict(super().loss_term_functions())
        regions = self.label_manager.has_regions
        terms["kd"] = (self.lambda_kd, lambda output, target: kd_loss(
            output, self.teacher_view.output, self.kd_temperature, regions, self.kd_t_squared, self.kd_class_mean))
        if self.lambda_lat and self.form.stages:
            terms["kl_latent"] = (self.lambda_lat, lambda output, target: latent_kl(unwrap(self.network).latents,
                                                                                    self.teacher_view.latents))
        if self.lambda_lat and self.form.stem_anchor:
            terms["stem_latent"] = (self.lambda_lat, lambda output, target: stem_feature_distance(
                unwrap(self.network).stem.output, self.teacher_view.stem, self.stem_latent_pool))
        return terms
