"""Baseline: nnU-Net's network and loss, trained on inputs whose modalities are randomly dropped."""
import torch
from nnunetv2.training.nnUNetTrainer.nnUNetTrainer import nnUNetTrainer

from nnunetv2_mtg.masking import ModalityMaskingTransform, check_missing_can_be_zero, insert_masking, \
    sampler_for_dataset
from nnunetv2_mtg.modalities import modality_names
from nnunetv2_mtg.schedules import add_schedule_variants


class nnUNetTrainerModalityDropout(nnUNetTrainer):
    p_full = 0.25  # probability of the full input, otherwise uniform over the other 2^M - 2 non-empty subsets;
    # None: uniform over all 2^M - 1 (the full input among them)
    fixed_subset = None  # a subset name ("T2", "T1ce+FLAIR") to always train on that subset
    mask_in_data_loader = True  # students mask on the device instead, their teacher needs the full patch

    def __init__(self, plans: dict, configuration: str, fold: int, dataset_json: dict,
                 device: torch.device = torch.device("cuda")):
        # every check fails before nnU-Net creates any folder
        self.modalities = modality_names(dataset_json)
        check_missing_can_be_zero(plans, configuration, dataset_json, type(self).__name__)
        self.subset_sampler = sampler_for_dataset(self.modalities, self.p_full, self.fixed_subset)
        super().__init__(plans, configuration, fold, dataset_json, device)

    def get_training_transforms(self, *args, **kwargs):
        pipeline = super().get_training_transforms(*args, **kwargs)
        if not self.mask_in_data_loader:
            return pipeline
        return insert_masking(pipeline, ModalityMaskingTransform(self.subset_sampler))


# nnUNetTrainerModalityDropout_smoke, _demo, _1epoch, _2epochs, _5epochs, _50epochs, _250epochs
add_schedule_variants(globals(), nnUNetTrainerModalityDropout)
