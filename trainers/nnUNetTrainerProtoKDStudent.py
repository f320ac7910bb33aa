"""Baseline student: the KD student plus ProtoKD's prototype term (Wang et al. 2023), from the same frozen
nnUNetTrainerModalityDropout teacher.

loss = nnU-Net's loss + lambda_kd * KD(teacher logits, T) + lambda_proto * prototype term
with the paper's settings: T = 10, lambda_kd = 10 (KD not multiplied by T^2 and averaged over the classes, as in the
authors' code), lambda_proto = 0.1.
"""
import torch

from nnunetv2_mtg.alignment import unwrap
from nnunetv2_mtg.distillation import DecoderFeatureTap, class_masks, prototype_loss
from nnunetv2_mtg.schedules import add_schedule_variants
from nnunetv2_mtg.trainers.nnUNetTrainerKDStudent import nnUNetTrainerKDStudent


class nnUNetTrainerProtoKDStudent(nnUNetTrainerKDStudent):
    kd_temperature = 10.0
    lambda_kd = 10.0
    kd_t_squared = False
    kd_class_mean = True
    lambda_proto = 0.1

    def __init__(self, plans: dict, configuration: str, fold: int, dataset_json: dict,
                 device: torch.device = torch.device("cuda")):
        super().__init__(plans, configuration, fold, dataset_json, device)
        self.teacher_tap = DecoderFeatureTap(self.teacher_network)  # before initialize() may compile the teacher

    @classmethod
    def build_network_architecture(cls, plans_manager, configuration_manager, num_input_channels: int,
                                   num_output_channels: int, enable_deep_supervision: bool = True):
        # the tap is made here, before nnU-Net compiles the network; in eval mode (inference) it keeps nothing
        network = super().build_network_architecture(plans_manager, configuration_manager, num_input_channels,
                                                     num_output_channels, enable_deep_supervision)
        network.feature_tap = DecoderFeatureTap(network, only_in_training=True)
        return network

    def train_step(self, batch: dict) -> dict:
        try:
            return super().train_step(batch)
        finally:
            unwrap(self.network).feature_tap.clear()
            self.teacher_tap.clear()

    def loss_term_functions(self) -> dict:
        terms = dict(super().loss_term_functions())
        terms["proto"] = (self.lambda_proto, lambda output, target: prototype_loss(
            unwrap(self.network).feature_tap.features, self.teacher_tap.features,
            class_masks(target, self.label_manager)))
        return terms


# nnUNetTrainerProtoKDStudent_smoke, _demo, _1epoch, _2epochs, _5epochs, _50epochs, _250epochs
add_schedule_variants(globals(), nnUNetTrainerProtoKDStudent)
