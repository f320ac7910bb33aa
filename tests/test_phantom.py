"""The phantom: contrast rules the method relies on, structure, determinism, bad input."""
import hashlib
import json
import os

import numpy as np
import pytest
import SimpleITK as sitk
from scipy import ndimage

from conftest import N_TEST, N_TRAIN, SPACING, run_cli
from nnunetv2_mtg.env import UserInputError
from nnunetv2_mtg.phantom import EDEMA, ENHANCING, NECROSIS, generate, make_case

T1, T1CE, T2, FLAIR = range(4)


@pytest.fixture(scope="module")
def cases():
    return [make_case(seed=3, index=i) for i in range(12)]


def _ratio(case, channel, mask, reference=None):
    """Mean intensity in `mask` over mean in `reference` (default: the whole brain)."""
    reference = case.images[T1] > 0 if reference is None else reference
    return case.images[channel][mask].mean() / case.images[channel][reference].mean()


def test_contrast_rules(cases):
    enhancing = [c for c in cases if (c.labels == ENHANCING).any()]
    assert 0 < len(enhancing) < len(cases), "need cases with and without enhancing tumour"
    for c in enhancing:
        et = c.labels == ENHANCING
        nec = ndimage.binary_erosion(c.labels == NECROSIS)  # away from the bright rim (partial volume)
        # enhancing rim: bright on T1ce, about iso on T1
        assert _ratio(c, T1CE, et) > 1.35
        assert 0.75 < _ratio(c, T1, et) < 1.2
        assert _ratio(c, T1CE, et) > 1.4 * _ratio(c, T1, et)
        # necrosis: dark on T1 and T1ce, bright on T2
        assert _ratio(c, T1, nec) < 0.7 and _ratio(c, T1CE, nec) < 0.7
        assert _ratio(c, T2, nec) > 1.25
    for c in cases:
        ed = c.labels == EDEMA
        healthy = (c.labels == 0) & (c.images[T1] > 0)
        white_matter = (c.tissue[2] > 0.8) & healthy
        assert _ratio(c, T2, ed, white_matter) > 1.5 and _ratio(c, FLAIR, ed, white_matter) > 1.5
        assert 0.4 < _ratio(c, T1, ed, white_matter) < 0.8  # mildly dark on T1
        csf = (c.tissue[0] > 0.8) & healthy
        assert _ratio(c, T2, csf) > 1.5 and _ratio(c, FLAIR, csf) < 0.5
        # skull-stripped: all channels share one brain mask, background exactly 0
        assert all(((c.images[m] > 0) == (c.images[T1] > 0)).all() for m in range(4))


def _radial_spread(mask):
    """Coefficient of variation of the boundary's distance to the centroid (sphere: ~0.02)."""
    idx = np.argwhere(mask)
    boundary = np.argwhere(mask & ~ndimage.binary_erosion(mask))
    d = np.linalg.norm(boundary - idx.mean(0), axis=1)
    return d.std() / d.mean()


def test_shapes_are_irregular_and_vary(cases):
    volumes = [(c.labels > 0).sum() for c in cases]
    assert max(volumes) > 2 * min(volumes)
    sphere = np.linalg.norm(np.indices((40, 40, 40)) - 19.5, axis=0) < 12
    spreads = [_radial_spread(c.labels > 0) for c in cases]
    assert _radial_spread(sphere) < 0.03
    assert min(spreads) > 0.05 and np.mean(spreads) > 0.09


def _read(path):
    return sitk.GetArrayFromImage(sitk.ReadImage(path))


def test_dataset_structure_and_labels(phantom):
    raw = phantom["raw"]
    with open(os.path.join(raw, "dataset.json")) as f:
        dj = json.load(f)
    assert dj["channel_names"] == {"0": "T1", "1": "T1ce", "2": "T2", "3": "Flair"}
    assert dj["labels"] == {"background": 0, "whole tumor": [1, 2, 3], "tumor core": [2, 3], "enhancing tumor": [3]}
    assert dj["regions_class_order"] == [1, 2, 3]
    assert dj["numTraining"] == N_TRAIN
    assert len(os.listdir(os.path.join(raw, "imagesTr"))) == 4 * N_TRAIN
    assert len(os.listdir(os.path.join(raw, "labelsTr"))) == N_TRAIN
    assert len(os.listdir(os.path.join(raw, "imagesTs"))) == 4 * N_TEST
    assert len(os.listdir(os.path.join(raw, "labelsTs"))) == N_TEST
    seg = _read(os.path.join(raw, "labelsTr", "Phantom_00000.nii.gz"))
    img = sitk.ReadImage(os.path.join(raw, "imagesTr", "Phantom_00000_0001.nii.gz"))
    assert set(np.unique(seg)) <= {0, 1, 2, 3} and (seg > 0).any()
    assert img.GetSpacing() == (float(SPACING),) * 3
    assert sitk.GetArrayFromImage(img).shape == seg.shape


def _digest(folder):
    h = hashlib.sha256()
    for sub in ("imagesTr", "labelsTr"):
        for f in sorted(os.listdir(os.path.join(folder, sub))):
            h.update(f.encode())
            h.update(_read(os.path.join(folder, sub, f)).tobytes())
    return h.hexdigest()


def test_deterministic_per_seed(tmp_path, monkeypatch):
    digests = []
    for run, seed in (("a", 5), ("b", 5), ("c", 6)):
        monkeypatch.setenv("nnUNet_raw", str(tmp_path / run))
        digests.append(_digest(generate(7, 2, seed=seed, spacing=4)))
    assert digests[0] == digests[1]
    assert digests[0] != digests[2]


def test_bad_input(nnunet_env, tmp_path, monkeypatch):
    """The printed form once through the CLI; the rest in-process (a process start costs ~10 s)."""
    env = {k: v for k, v in nnunet_env.items() if k != "nnUNet_raw"}
    p = run_cli(["nnUNetv2_mtg_phantom", "-d", "8", "-n", "1"], env, check=False)
    assert p.returncode != 0 and "nnUNet_raw is not set" in p.stderr and "export nnUNet_raw=" in p.stderr
    assert "Traceback" not in p.stderr

    raw = tmp_path / "raw"
    monkeypatch.setenv("nnUNet_raw", str(raw))
    generate(8, 1, spacing=4)
    target = raw / "Dataset008_BraTSPhantom"
    marker = target / "user_note.txt"
    marker.write_text("keep unless --overwrite")
    with pytest.raises(UserInputError, match="--overwrite"):
        generate(8, 1, spacing=4)
    assert marker.exists()
    generate(8, 1, spacing=4, overwrite=True)
    assert not marker.exists() and (target / "dataset.json").exists()
    assert sorted(os.listdir(raw)) == ["Dataset008_BraTSPhantom"]  # no temp folders left behind

    # another dataset with the same ID is never touched, not even with --overwrite
    other = raw / "Dataset009_BraTS2021"
    other.mkdir()
    (other / "dataset.json").write_text("{}")
    with pytest.raises(UserInputError, match="Dataset009_BraTS2021"):
        generate(9, 1, overwrite=True)
    assert (other / "dataset.json").read_text() == "{}"
    assert not (raw / "Dataset009_BraTSPhantom").exists()
