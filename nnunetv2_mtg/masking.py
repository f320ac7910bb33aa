"""Modality masking: draw which modalities are present and zero the others.

A missing modality is an all-zero channel after nnU-Net's z-score normalisation, the same value at
training and at inference. The sampler is shared by the augmentation transform (per sample, in
nnU-Net's data loader workers) and by the student trainer (per batch, on the device, because its
teacher must see the same patch unmasked).
"""
from __future__ import annotations

import numpy as np
import torch
from batchgeneratorsv2.transforms.base.basic_transform import BasicTransform, ImageOnlyTransform
from batchgeneratorsv2.transforms.utils.compose import ComposeTransforms


class SubsetSampler:
    """Draws presence masks over `num_channels`: the full set with probability exactly `p_full`, else one of the
    other non-empty subsets uniformly; with `p_full=None` one of all 2^C - 1 non-empty subsets uniformly (the
    full set among them); or always `fixed` when given."""

    def __init__(self, num_channels: int, p_full: float | None = None, fixed: tuple[bool, ...] | None = None):
        if num_channels < 2:
            raise ValueError(f"need at least 2 channels to mask, got {num_channels}")
        if p_full is not None and not 0.0 <= p_full <= 1.0:
            raise ValueError(f"p_full must be in [0, 1] or None (uniform over all subsets), got {p_full}")
        if fixed is not None and (len(fixed) != num_channels or not any(fixed)):
            raise ValueError(f"fixed subset {fixed} must have {num_channels} entries, at least one True")
        self.num_channels = num_channels
        self.p_full = p_full
        self.fixed = None if fixed is None else np.array(fixed, dtype=bool)
        # all non-empty subsets as rows of a boolean table; row index = binary code - 1 (the full set is last)
        codes = np.arange(1, 2 ** num_channels)
        self.subsets = ((codes[:, None] >> np.arange(num_channels)) & 1).astype(bool)

    def draw(self, n: int | None = None, rng: np.random.Generator | None = None) -> np.ndarray:
        """One mask of shape (C,), or n masks of shape (n, C). Uses numpy's global RNG by default,
        which nnU-Net's augmentation workers seed like for every other batchgeneratorsv2 transform."""
        k = 1 if n is None else n
        if self.fixed is not None:
            masks = np.repeat(self.fixed[None], k, axis=0)
        else:
            uniform = rng.random if rng is not None else np.random.random
            integers = rng.integers if rng is not None else np.random.randint
            if self.p_full is None:
                masks = self.subsets[integers(0, len(self.subsets), size=k)]
            else:  # the full set is the last row: draw among the others, then make p_full of the draws full
                masks = self.subsets[integers(0, len(self.subsets) - 1, size=k)]
                masks[uniform(k) < self.p_full] = True
        return masks[0] if n is None else masks

    def draw_torch(self, n: int, device: torch.device) -> torch.Tensor:
        """n masks as a float tensor of shape (n, C) on `device`."""
        return torch.from_numpy(self.draw(n).astype(np.float32)).to(device, non_blocking=True)


class ModalityMaskingTransform(ImageOnlyTransform):
    """Sets the channels of absent modalities to exactly 0; the segmentation is never touched."""

    def __init__(self, sampler: SubsetSampler):
        super().__init__()
        self.sampler = sampler

    def get_parameters(self, **data_dict) -> dict:
        return {"mask": self.sampler.draw()}

    def _apply_to_image(self, img: torch.Tensor, **params) -> torch.Tensor:
        absent = torch.from_numpy(~params["mask"])
        img[absent] = 0
        return img


def apply_mask(data: torch.Tensor, masks: torch.Tensor) -> torch.Tensor:
    """Zero absent channels of a batch: data (B, C, ...) times masks (B, C)."""
    return data * masks.view(*masks.shape, *([1] * (data.ndim - 2))).to(data.dtype)


def zero_channels(data, present):
    """One case (C, ...) with the channels not `present` set to exactly 0: a missing modality, after nnU-Net's
    normalisation (the evaluation's subsets and the prediction tool's missing files)."""
    keep = np.asarray(present, dtype=np.float32).reshape(-1, *([1] * (data.ndim - 1)))
    return data * (torch.from_numpy(keep) if isinstance(data, torch.Tensor) else keep)


def insert_masking(pipeline: BasicTransform, masking: BasicTransform) -> ComposeTransforms:
    """Put `masking` into nnU-Net's training pipeline after the spatial, intensity and mirror transforms,
    i.e. right before the segmentation bookkeeping that ends it (region conversion, deep-supervision
    downsampling), so that every intensity augmentation has seen the real channel first."""
    from batchgeneratorsv2.transforms.utils.deep_supervision_downsampling import DownsampleSegForDSTransform
    from batchgeneratorsv2.transforms.utils.seg_to_regions import ConvertSegmentationToRegionsTransform

    if not isinstance(pipeline, ComposeTransforms):
        raise TypeError(f"expected nnU-Net's ComposeTransforms, got {type(pipeline).__name__}")
    tail_types = (DownsampleSegForDSTransform, ConvertSegmentationToRegionsTransform)
    transforms = list(pipeline.transforms)
    position = len(transforms)
    while position > 0 and isinstance(transforms[position - 1], tail_types):
        position -= 1
    transforms.insert(position, masking)
    return ComposeTransforms(transforms)


def sampler_for_dataset(modalities: list[str], p_full: float | None, fixed_subset: str | None) -> SubsetSampler:
    """The sampler a trainer's class attributes ask for; `fixed_subset` is a subset name like "T2"."""
    from nnunetv2_mtg.modalities import enumerate_subsets, find_subsets

    fixed = None if fixed_subset is None else find_subsets(enumerate_subsets(modalities), [fixed_subset])[0].mask
    return SubsetSampler(len(modalities), p_full=p_full, fixed=fixed)


def check_missing_can_be_zero(plans: dict, configuration: str, dataset_json: dict, who: str) -> None:
    """UserInputError (before nnU-Net creates any folder) where "missing = an all-zero channel after nnU-Net's
    normalisation" cannot hold: a cascade stage, whose extra input channels (the previous stage's segmentation)
    the masking would take for modalities, and a normalisation that maps an all-zero image elsewhere (then a
    missing modality looks present to stock nnUNetv2_predict). The normalisation is checked by running nnU-Net's
    own preprocessor on an all-zero case."""
    from nnunetv2.utilities.plans_handling.plans_handler import PlansManager

    from nnunetv2_mtg.env import UserInputError
    from nnunetv2_mtg.modalities import channel_names

    plans_manager = PlansManager(plans)
    cm = plans_manager.get_configuration(configuration)
    if cm.previous_stage_name is not None:
        raise UserInputError(f"{who} cannot train the cascade configuration '{configuration}': its extra input channels "
                             f"(the segmentation of '{cm.previous_stage_name}') would be masked and aligned as if they "
                             f"were modalities. Train '3d_fullres' (or '3d_lowres', '2d') instead.")
    channels = channel_names(dataset_json)
    zeros = np.zeros((len(channels), 2, 2, 2), dtype=np.float32)
    out = cm.preprocessor_class(verbose=False)._normalize(
        zeros, np.zeros((1, 2, 2, 2), dtype=np.int16), cm, plans_manager.foreground_intensity_properties_per_channel)
    bad = [c for c in range(len(channels)) if np.any(out[c] != 0)]
    if bad:
        c = bad[0]
        raise UserInputError(
            f"{who}: channel {c} ({channels[c]}) uses {cm.normalization_schemes[c]}, which maps an all-zero image to "
            f"{float(out[c].flat[0]):.3g}, not 0. A missing modality is an all-zero channel after normalisation, so "
            f"with this scheme a missing modality would look present. Use a scheme that keeps 0 at 0 "
            f"(ZScoreNormalization, nnU-Net's default for MRI channels): set normalization_schemes in the plans, or "
            f"name the channels as MRI (not 'CT') in dataset.json and plan again.")
