"""Baseline student without alignment (KD-Net style): stock network, logit distillation from the frozen
nnUNetTrainerModalityDropout teacher of the same dataset, plans, configuration and fold.

loss = nnU-Net's loss + lambda_kd * KD(teacher logits)
"""
from nnunetv2_mtg.loss_terms import LossTermsMixin
from nnunetv2_mtg.schedules import add_fixed_subset_variants, add_schedule_variants
from nnunetv2_mtg.student import DistillationMixin
from nnunetv2_mtg.trainers.nnUNetTrainerModalityDropout import nnUNetTrainerModalityDropout


class nnUNetTrainerKDStudent(DistillationMixin, LossTermsMixin, nnUNetTrainerModalityDropout):
    teacher_trainer = "nnUNetTrainerModalityDropout"
    p_full = None  # uniform over all 15 subsets
    lambda_kd = 1.0
    kd_temperature = 2.0


add_fixed_subset_variants(globals(), nnUNetTrainerKDStudent)  # nnUNetTrainerKDStudent_T1, _T1ce, _T2, _FLAIR


# nnUNetTrainerKDStudent_smoke, _demo, _1epoch, _2epochs, _5epochs, _50epochs, _250epochs
add_schedule_variants(globals(), nnUNetTrainerKDStudent)
