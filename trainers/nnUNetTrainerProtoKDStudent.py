"""Baseline student: the KD student plus ProtoKD's prototype term (Wang et al. 2023), from the same frozen
nnUNetTrainerModalityDropout teacher.

loss = nnU-Net's loss + lambda_kd * KD(teacher logits, T) + lambda_proto * prototype term
with the paper's settings: T = 10, lambda_kd = 10 (KD not multiplied by T^2, as in the authors' code),
lambda_proto = 0.1.
"""
from nnunetv2_mtg.distillation import DecoderFeatureTap, class_masks, prototype_loss
from nnunetv2_mtg.schedules import add_schedule_variants
from nnunetv2_mtg.trainers.nnUNetTrainerKDStudent import nnUNetTrainerKDStudent


class nnUNetTrainerProtoKDStudent(nnUNetTrainerKDStudent):
    kd_temperature = 10.0
    lambda_kd = 10.0
    kd_t_squared = False
    lambda_proto = 0.1

    def initialize(self):
        super().initialize()
        self.student_tap = DecoderFeatureTap(self.network)
        self.teacher_tap = DecoderFeatureTap(self.teacher_network)

    def train_step(self, batch: dict) -> dict:
        try:
            return super().train_step(batch)
        finally:
            self.student_tap.clear()
            self.teacher_tap.clear()

    def loss_term_functions(self) -> dict:
        terms = dict(super().loss_term_functions())
        terms["proto"] = (self.lambda_proto, lambda output, target: prototype_loss(
            self.student_tap.features, self.teacher_tap.features, class_masks(target, self.label_manager)))
        return terms


# nnUNetTrainerProtoKDStudent_smoke, _2epochs, _5epochs, _50epochs, _250epochs
add_schedule_variants(globals(), nnUNetTrainerProtoKDStudent)
