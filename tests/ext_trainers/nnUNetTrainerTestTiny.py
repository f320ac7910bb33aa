"""Test-only trainers (not shipped): a stock one that proves the nnUNet_extTrainer mechanism with nnU-Net's own
network and loss, on the smoke schedule, and users' subclasses with bad alignment attributes."""
from nnunetv2.training.nnUNetTrainer.nnUNetTrainer import nnUNetTrainer

from nnunetv2_mtg.schedules import SmokeSchedule
from nnunetv2_mtg.trainers.nnUNetTrainerMTGTeacher import nnUNetTrainerMTGTeacher


class nnUNetTrainerTestTiny(SmokeSchedule, nnUNetTrainer):
    pass


# a user's subclasses with a typo in their alignment attributes: must fail before nnU-Net creates any folder
class nnUNetTrainerTestBadAnchor(SmokeSchedule, nnUNetTrainerMTGTeacher):
    stem_anchor = "gauss"


class nnUNetTrainerTestBadStage(SmokeSchedule, nnUNetTrainerMTGTeacher):
    aligned_stages = (-1, 9)
