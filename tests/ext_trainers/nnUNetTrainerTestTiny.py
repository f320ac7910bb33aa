"""Test-only trainers (not shipped): a stock one that proves the nnUNet_extTrainer mechanism with nnU-Net's own
network and loss, quick variants of ours for tests that need a trained model but not the smoke schedule, and users'
subclasses with bad alignment attributes."""
import torch
from nnunetv2.training.nnUNetTrainer.nnUNetTrainer import nnUNetTrainer

from nnunetv2_mtg.schedules import FixedIterations, SmokeSchedule, add_iteration_variants
from nnunetv2_mtg.trainers.nnUNetTrainerModalityDropout import nnUNetTrainerModalityDropout
from nnunetv2_mtg.trainers.nnUNetTrainerMTGStudent import (nnUNetTrainerMTGStudentAllStages,
                                                            nnUNetTrainerMTGStudentGaussian,
                                                            nnUNetTrainerMTGStudentMixture)
from nnunetv2_mtg.trainers.nnUNetTrainerMTGTeacher import (nnUNetTrainerMTGTeacher, nnUNetTrainerMTGTeacherAllStages,
                                                            nnUNetTrainerMTGTeacherBottleneck,
                                                            nnUNetTrainerMTGTeacherGaussian,
                                                            nnUNetTrainerMTGTeacherMixture)
from nnunetv2_mtg.trainers.nnUNetTrainerProtoKDStudent import nnUNetTrainerProtoKDStudent


class nnUNetTrainerTestTiny(SmokeSchedule, nnUNetTrainer):
    pass


# <trainer>_12iters: one epoch of 12 iterations, no final validation (the schedule of the accuracy experiment)
add_iteration_variants(globals(), 12, nnUNetTrainerModalityDropout, nnUNetTrainerMTGTeacherBottleneck,
                       nnUNetTrainerMTGTeacherAllStages, nnUNetTrainerMTGTeacherMixture, nnUNetTrainerMTGTeacherGaussian,
                       nnUNetTrainerMTGStudentAllStages, nnUNetTrainerMTGStudentMixture, nnUNetTrainerMTGStudentGaussian,
                       nnUNetTrainerProtoKDStudent)


class nnUNetTrainerTestStudentTwoEpochs(FixedIterations, nnUNetTrainerMTGStudentMixture):
    """Two epochs of 5 iterations: enough for a checkpoint to resume from."""

    def __init__(self, plans: dict, configuration: str, fold: int, dataset_json: dict,
                 device: torch.device = torch.device("cuda")):
        super().__init__(plans, configuration, fold, dataset_json, device)
        self.num_epochs, self.num_iterations_per_epoch = 2, 5


# a user's subclasses with a typo in their alignment attributes: must fail before nnU-Net creates any folder
class nnUNetTrainerTestBadAnchor(SmokeSchedule, nnUNetTrainerMTGTeacher):
    stem_anchor = "gauss"


class nnUNetTrainerTestBadStage(SmokeSchedule, nnUNetTrainerMTGTeacher):
    aligned_stages = (-1, 9)
