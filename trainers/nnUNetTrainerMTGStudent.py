"""MTG students (docs/design.md): aligned like their teacher, see missing modalities, learn from the frozen
MTG teacher of the same form, dataset, plans, configuration and fold.

loss = nnU-Net's loss + lambda_kd * KD(teacher logits)
       + lambda_lat * (KL(teacher latent || student latent) and/or the stem features' distance to the teacher's)
       + lambda_align * (the student's own alignment terms)
"""
from nnunetv2_mtg.forms import AllStagesForm, BottleneckForm, FirstBlockForm, GaussianStemForm, MixtureStemForm, \
    StandinStemForm
from nnunetv2_mtg.schedules import add_schedule_variants
from nnunetv2_mtg.student import DistillationMixin
from nnunetv2_mtg.trainers.nnUNetTrainerMTGTeacher import nnUNetTrainerMTGTeacher


class nnUNetTrainerMTGStudent(DistillationMixin, nnUNetTrainerMTGTeacher):
    teacher_trainer = "nnUNetTrainerMTGTeacher"
    p_full = None  # uniform over all 15 subsets, the full input being one of them
    lambda_kd = 1.0
    kd_temperature = 2.0
    lambda_lat = 0.1  # lambda_align: the form's (forms.py), as the teacher's


class nnUNetTrainerMTGStudentBottleneck(BottleneckForm, nnUNetTrainerMTGStudent):
    teacher_trainer = "nnUNetTrainerMTGTeacherBottleneck"


class nnUNetTrainerMTGStudentAllStages(AllStagesForm, nnUNetTrainerMTGStudent):
    teacher_trainer = "nnUNetTrainerMTGTeacherAllStages"


class nnUNetTrainerMTGStudentMixture(MixtureStemForm, nnUNetTrainerMTGStudent):  # the scale-invariant loss
    teacher_trainer = "nnUNetTrainerMTGTeacherMixture"


class nnUNetTrainerMTGStudentMixtureRawLoss(nnUNetTrainerMTGStudent):  # the default, by the experiment's name
    teacher_trainer = "nnUNetTrainerMTGTeacherMixtureRawLoss"


class nnUNetTrainerMTGStudentGaussian(GaussianStemForm, nnUNetTrainerMTGStudent):
    teacher_trainer = "nnUNetTrainerMTGTeacherGaussian"


class nnUNetTrainerMTGStudentStandin(StandinStemForm, nnUNetTrainerMTGStudent):
    teacher_trainer = "nnUNetTrainerMTGTeacherStandin"


class nnUNetTrainerMTGStudentFirstBlock(FirstBlockForm, nnUNetTrainerMTGStudent):
    teacher_trainer = "nnUNetTrainerMTGTeacherFirstBlock"


# one student per single modality (as in the KD papers); each lands in its own nnU-Net output folder
class nnUNetTrainerMTGStudent_T1(nnUNetTrainerMTGStudent):
    fixed_subset = "T1"


class nnUNetTrainerMTGStudent_T1ce(nnUNetTrainerMTGStudent):
    fixed_subset = "T1ce"


class nnUNetTrainerMTGStudent_T2(nnUNetTrainerMTGStudent):
    fixed_subset = "T2"


class nnUNetTrainerMTGStudent_FLAIR(nnUNetTrainerMTGStudent):
    fixed_subset = "FLAIR"


# <trainer>_smoke, _demo, _1epoch, _2epochs, _5epochs, _50epochs, _250epochs of each form
add_schedule_variants(globals(), nnUNetTrainerMTGStudent, nnUNetTrainerMTGStudentBottleneck,
                      nnUNetTrainerMTGStudentAllStages, nnUNetTrainerMTGStudentMixture,
                      nnUNetTrainerMTGStudentMixtureRawLoss, nnUNetTrainerMTGStudentGaussian,
                      nnUNetTrainerMTGStudentStandin, nnUNetTrainerMTGStudentFirstBlock)
