"""The masking transform: subset frequencies, exact zeros, untouched labels, its place in nnU-Net's pipeline."""
import numpy as np
import pytest
import torch
from batchgeneratorsv2.transforms.spatial.mirroring import MirrorTransform
from batchgeneratorsv2.transforms.utils.deep_supervision_downsampling import DownsampleSegForDSTransform
from batchgeneratorsv2.transforms.utils.seg_to_regions import ConvertSegmentationToRegionsTransform
from nnunetv2.training.nnUNetTrainer.nnUNetTrainer import nnUNetTrainer

from nnunetv2_mtg.masking import (ModalityMaskingTransform, SubsetSampler, apply_mask, insert_masking,
                                  sampler_for_dataset)

N = 60000


def _codes(masks):
    return (masks.astype(int) * (1 << np.arange(masks.shape[1]))).sum(1)


@pytest.mark.parametrize("p_full", [0.0, 0.25, 1.0, None])
def test_subset_frequencies(p_full):
    """p_full is exactly the frequency of the full set; the other 14 subsets share the rest evenly. None: all 15
    subsets uniformly (the students' setting)."""
    masks = SubsetSampler(4, p_full=p_full).draw(N, np.random.default_rng(0))
    freq = np.bincount(_codes(masks), minlength=16) / N
    assert freq[0] == 0  # never all missing
    full = 1 / 15 if p_full is None else p_full
    np.testing.assert_allclose(freq[1:15], (1 - full) / 14, atol=0.006)
    assert abs(freq[15] - full) < 0.008


def test_fixed_subset_and_global_rng():
    sampler = sampler_for_dataset(["T1", "T1ce", "T2", "FLAIR"], p_full=0.5, fixed_subset="T2+FLAIR")
    assert (sampler.draw(1000) == [False, False, True, True]).all()
    np.random.seed(3)
    a = SubsetSampler(4).draw(50)
    np.random.seed(3)
    assert (a == SubsetSampler(4).draw(50)).all()  # seeded like nnU-Net's other transforms


def test_transform_zeroes_exactly_and_leaves_the_rest():
    np.random.seed(0)
    transform = ModalityMaskingTransform(SubsetSampler(4, p_full=None))
    seen = set()
    for _ in range(300):
        image = torch.randn(4, 8, 9, 10) + 5
        seg = torch.randint(0, 4, (1, 8, 9, 10))
        original, original_seg = image.clone(), seg.clone()
        out = transform(image=image, segmentation=seg)
        absent = (out["image"] == 0).flatten(1).all(1)
        assert 1 <= int((~absent).sum()) <= 4
        assert torch.equal(out["image"][~absent], original[~absent])
        assert torch.equal(out["segmentation"], original_seg)
        seen.add(tuple(absent.tolist()))
    assert len(seen) == 15  # p_full = None: only the 15 non-empty subsets, including the full one


def _stock_pipeline(regions):
    return nnUNetTrainer.get_training_transforms(
        (48, 48, 48), (-0.5, 0.5), [[1, 1, 1], [0.5, 0.5, 0.5]], (0, 1, 2), False,
        use_mask_for_norm=[False] * 4, foreground_labels=[1, 2, 3], regions=regions)


@pytest.mark.parametrize("regions", [None, [(1, 2, 3), (2, 3), (3,)]])
def test_inserted_after_augmentation_before_segmentation_bookkeeping(regions):
    masking = ModalityMaskingTransform(SubsetSampler(4, p_full=0.0))
    pipeline = insert_masking(_stock_pipeline(regions), masking)
    types = [type(t) for t in pipeline.transforms]
    i = [t is masking for t in pipeline.transforms].index(True)
    mirror = [k for k, t in enumerate(pipeline.transforms) if isinstance(getattr(t, "transform", t), MirrorTransform)]
    assert mirror and mirror[0] < i
    tail = (DownsampleSegForDSTransform, ConvertSegmentationToRegionsTransform)
    assert all(issubclass(t, tail) for t in types[i + 1:]) and len(types[i + 1:]) == (2 if regions else 1)
    # the whole real pipeline on one sample: dropped channels exactly zero, targets are deep-supervision lists
    np.random.seed(1)
    for _ in range(5):
        out = pipeline(image=torch.randn(4, 48, 48, 48), segmentation=torch.randint(0, 4, (1, 48, 48, 48)))
        zero = (out["image"] == 0).flatten(1).all(1)
        assert 1 <= int((~zero).sum()) and isinstance(out["segmentation"], list)


def test_apply_mask_on_batches():
    data = torch.randn(3, 4, 5, 5, 5)
    masks = torch.tensor([[1, 0, 0, 1], [1, 1, 1, 1], [0, 1, 0, 0]], dtype=torch.float32)
    out = apply_mask(data, masks)
    assert (out[0, 1:3] == 0).all() and torch.equal(out[1], data[1]) and torch.equal(out[2, 1], data[2, 1])


def test_one_modality_students_draw_only_their_modality():
    """`<student>_T1` ... `_FLAIR` (KD and MTG) train on their one modality and nothing else."""
    from nnunetv2_mtg.trainers import nnUNetTrainerKDStudent as kd
    from nnunetv2_mtg.trainers import nnUNetTrainerMTGStudent as mtg

    modalities = ["T1", "T1ce", "T2", "FLAIR"]
    for module, base in ((kd, kd.nnUNetTrainerKDStudent), (mtg, mtg.nnUNetTrainerMTGStudent)):
        for i, modality in enumerate(modalities):
            cls = getattr(module, f"{base.__name__}_{modality}")
            assert issubclass(cls, base) and cls.__module__ == module.__name__
            masks = sampler_for_dataset(modalities, cls.p_full, cls.fixed_subset).draw(50)
            assert (masks == np.eye(4, dtype=bool)[i]).all()
