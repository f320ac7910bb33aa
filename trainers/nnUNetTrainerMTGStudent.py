"""The MTG student (DESIGN.md section 3): aligned like the teacher, sees missing modalities, learns from the
frozen nnUNetTrainerMTGTeacher of the same dataset, plans, configuration and fold.

loss = nnU-Net's loss + lambda_kd * KD(teacher logits) + lambda_lat * KL(teacher latent || student latent)
       + lambda_align * KL(student latent || N(0, I))
"""
from nnunetv2_mtg.schedules import FixedEpochs, SmokeSchedule
from nnunetv2_mtg.student import DistillationMixin
from nnunetv2_mtg.trainers.nnUNetTrainerMTGTeacher import nnUNetTrainerMTGTeacher


class nnUNetTrainerMTGStudent(DistillationMixin, nnUNetTrainerMTGTeacher):
    teacher_trainer = "nnUNetTrainerMTGTeacher"
    p_full = 0.0  # uniform over all 15 subsets, the full input being one of them
    lambda_kd = 1.0
    kd_temperature = 2.0
    lambda_lat = 0.1
    lambda_align = 0.1
    loss_terms = ("kd", "kl_latent", "kl_align")


class nnUNetTrainerMTGStudent_smoke(SmokeSchedule, nnUNetTrainerMTGStudent):
    pass


class nnUNetTrainerMTGStudent_5epochs(FixedEpochs, nnUNetTrainerMTGStudent):
    epochs = 5


class nnUNetTrainerMTGStudent_50epochs(FixedEpochs, nnUNetTrainerMTGStudent):
    epochs = 50


class nnUNetTrainerMTGStudent_250epochs(FixedEpochs, nnUNetTrainerMTGStudent):
    epochs = 250


# one student per single modality (as in the KD papers); each lands in its own nnU-Net output folder
class nnUNetTrainerMTGStudent_T1(nnUNetTrainerMTGStudent):
    fixed_subset = "T1"


class nnUNetTrainerMTGStudent_T1ce(nnUNetTrainerMTGStudent):
    fixed_subset = "T1ce"


class nnUNetTrainerMTGStudent_T2(nnUNetTrainerMTGStudent):
    fixed_subset = "T2"


class nnUNetTrainerMTGStudent_FLAIR(nnUNetTrainerMTGStudent):
    fixed_subset = "FLAIR"
