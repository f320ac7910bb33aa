"""Test-only trainers (not shipped): a stock one that proves the nnUNet_extTrainer mechanism with nnU-Net's own
network and loss, quick variants of ours for tests that need a trained model but not the smoke schedule, and users'
subclasses with bad alignment attributes."""
import torch
from nnunetv2.training.nnUNetTrainer.nnUNetTrainer import nnUNetTrainer

from nnunetv2_mtg.schedules import FixedIterations, SmokeSchedule, add_iteration_variants
from nnunetv2_mtg.trainers.nnUNetTrainerKDStudent import nnUNetTrainerKDStudent
from nnunetv2_mtg.trainers.nnUNetTrainerModalityDropout import nnUNetTrainerModalityDropout
from nnunetv2_mtg.trainers.nnUNetTrainerMTGStudent import (nnUNetTrainerMTGStudent, nnUNetTrainerMTGStudentAllStages,
                                                            nnUNetTrainerMTGStudentFirstBlock,
                                                            nnUNetTrainerMTGStudentGaussian)
from nnunetv2_mtg.trainers.nnUNetTrainerMTGTeacher import (nnUNetTrainerMTGTeacher, nnUNetTrainerMTGTeacherAllStages,
                                                            nnUNetTrainerMTGTeacherBottleneck,
                                                            nnUNetTrainerMTGTeacherFirstBlock,
                                                            nnUNetTrainerMTGTeacherGaussian)
from nnunetv2_mtg.trainers.nnUNetTrainerProtoKDStudent import nnUNetTrainerProtoKDStudent


class nnUNetTrainerTestTiny(SmokeSchedule, nnUNetTrainer):
    pass


# <trainer>_12iters: one epoch of 12 iterations and 2 validation iterations, no final validation (the schedule of the
# accuracy experiment, shorter); the default MTG teacher stands for the mixture-stem form
add_iteration_variants(globals(), 12, nnUNetTrainerModalityDropout, nnUNetTrainerMTGTeacher,
                       nnUNetTrainerMTGTeacherBottleneck, nnUNetTrainerMTGTeacherAllStages,
                       nnUNetTrainerMTGTeacherGaussian, nnUNetTrainerMTGTeacherFirstBlock,
                       nnUNetTrainerMTGStudentAllStages, nnUNetTrainerMTGStudentGaussian,
                       nnUNetTrainerMTGStudentFirstBlock, nnUNetTrainerKDStudent, nnUNetTrainerProtoKDStudent,
                       val_iterations=2)


# <trainer>_500iters: two nnU-Net epochs (2 validation iterations each), enough for a cpu_2d teacher of the suite's
# phantom and its student (given that teacher with nnUNet_MTG_TEACHER) to segment; one epoch is not reliably enough
add_iteration_variants(globals(), 500, nnUNetTrainerMTGTeacher, nnUNetTrainerMTGStudent, val_iterations=2)


class TwoShortEpochs(FixedIterations):
    """Two epochs of 5 iterations (2 validation iterations), a checkpoint after each: a run to interrupt and resume."""

    val_iterations = 2

    def __init__(self, plans: dict, configuration: str, fold: int, dataset_json: dict,
                 device: torch.device = torch.device("cuda")):
        super().__init__(plans, configuration, fold, dataset_json, device)
        self.num_epochs, self.num_iterations_per_epoch = 2, 5


class nnUNetTrainerTestTeacherTwoEpochs(TwoShortEpochs, nnUNetTrainerMTGTeacher):
    pass


class nnUNetTrainerTestStudentTwoEpochs(TwoShortEpochs, nnUNetTrainerMTGStudent):
    teacher_trainer = "nnUNetTrainerTestTeacherTwoEpochs"


# a user's subclasses with a typo in their alignment attributes: must fail before nnU-Net creates any folder
class nnUNetTrainerTestBadAnchor(SmokeSchedule, nnUNetTrainerMTGTeacher):
    stem_anchor = "gauss"


class nnUNetTrainerTestBadStage(SmokeSchedule, nnUNetTrainerMTGTeacher):
    aligned_stages = (-1, 9)
