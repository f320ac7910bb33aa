"""Test-only stock trainer (not shipped): proves the nnUNet_extTrainer mechanism with nnU-Net's own network and
loss, on the smoke schedule."""
from nnunetv2.training.nnUNetTrainer.nnUNetTrainer import nnUNetTrainer

from nnunetv2_mtg.schedules import SmokeSchedule


class nnUNetTrainerTestTiny(SmokeSchedule, nnUNetTrainer):
    pass
