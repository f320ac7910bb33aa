"""Dice / HD95 against hand-made masks with known answers, the empty-mask conventions, region names."""
import numpy as np
import pytest
from monai.metrics import compute_hausdorff_distance

from nnunetv2_mtg.metrics import HD95_ONE_EMPTY, dice, hd95, region_names, score_case


def _vol(shape=(20, 20, 20)):
    return np.zeros(shape, dtype=bool)


def test_dice_known_values():
    a, b = _vol(), _vol()
    a[2:4, 2:4, 2:4] = True  # 8 voxels
    b[2:4, 2:4, 2:6] = True  # 16 voxels, 8 shared
    assert dice(a, b) == pytest.approx(16 / 24)
    assert dice(a, a) == 1.0 and dice(a, _vol()) == 0.0


def test_hd95_known_values():
    a, b = _vol(), _vol()
    a[3, 3, 3] = True
    b[3, 3, 8] = True  # 5 voxels apart along z
    assert hd95(a, b, (1.0, 1.0, 2.0)) == pytest.approx(10.0)
    assert hd95(a, b, (1.0, 1.0, 1.0)) == pytest.approx(5.0)
    assert hd95(a, a, (1.0, 1.0, 1.0)) == 0.0


def test_cropping_does_not_change_the_distance():
    rng = np.random.default_rng(0)
    a, b = _vol((60, 50, 40)), _vol((60, 50, 40))
    a[5:15, 10:25, 5:12] = True
    b[8:30, 12:20, 20:35] = True
    b &= rng.random(b.shape) > 0.2  # ragged surface
    spacing = (1.0, 1.5, 2.0)
    uncropped = compute_hausdorff_distance(a[None, None], b[None, None], include_background=True, percentile=95,
                                           spacing=list(spacing)).item()
    assert hd95(a, b, spacing) == pytest.approx(uncropped, rel=1e-6)


def test_empty_conventions():
    empty, one = _vol(), _vol()
    one[1, 1, 1] = True
    assert (dice(empty, empty), hd95(empty, empty, (1, 1, 1))) == (1.0, 0.0)
    assert (dice(one, empty), hd95(one, empty, (1, 1, 1))) == (0.0, HD95_ONE_EMPTY)
    assert (dice(empty, one), hd95(empty, one, (1, 1, 1))) == (0.0, 373.13)


class _LM:
    def __init__(self, has_regions, regions=None, labels=None):
        self.has_regions, self.foreground_regions, self.foreground_labels = has_regions, regions, labels


def test_regions_from_the_dataset():
    brats = {"labels": {"background": 0, "whole tumor": [1, 2, 3], "tumor core": [2, 3], "enhancing tumor": [3]}}
    assert region_names(brats, _LM(True, [(1, 2, 3), (2, 3), (3,)])) == [
        ("WT", (1, 2, 3)), ("TC", (2, 3)), ("ET", (3,))]
    # a label-based BraTS dataset: the BraTS regions from its label names, then its labels
    labels = {"labels": {"background": 0, "edema": 1, "necrosis": 2, "enhancing": 3}}
    assert region_names(labels, _LM(False, labels=[1, 2, 3])) == [
        ("WT", (1, 2, 3)), ("TC", (2, 3)), ("ET", (3,)), ("label edema", 1), ("label necrosis", 2),
        ("label enhancing", 3)]
    organs = {"labels": {"background": 0, "liver": 1, "spleen": 2}}
    assert region_names(organs, _LM(False, labels=[1, 2])) == [("liver", 1), ("spleen", 2)]


def test_score_case_on_label_maps():
    ref = np.zeros((10, 10, 10), dtype=np.uint8)
    ref[2:6, 2:6, 2:6] = 1
    ref[3:5, 3:5, 3:5] = 3
    pred = ref.copy()
    pred[pred == 3] = 2  # enhancing predicted as necrosis: WT and TC right, ET missed
    scores = score_case(pred, ref, [("WT", (1, 2, 3)), ("TC", (2, 3)), ("ET", (3,))], (1.0, 1.0, 1.0))
    assert scores["WT"] == (1.0, 0.0) and scores["TC"] == (1.0, 0.0) and scores["ET"] == (0.0, HD95_ONE_EMPTY)


def test_lesionwise_without_the_package_says_how_to_install(monkeypatch):
    import sys

    from nnunetv2_mtg.env import UserInputError
    from nnunetv2_mtg.metrics import lesionwise_scorer

    monkeypatch.setitem(sys.modules, "brats_evaluation", None)  # as on a machine without the [brats] extra
    with pytest.raises(UserInputError, match=r"pip install 'nnunetv2-mtg\[brats\]'"):
        lesionwise_scorer()
