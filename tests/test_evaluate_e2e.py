"""nnUNetv2_mtg_evaluate and nnUNetv2_mtg_gap on trained smoke models of the phantom."""
import csv
import os
import shutil

import numpy as np
import pytest
import SimpleITK as sitk
import torch

from conftest import run_cli
from nnunetv2_mtg.alignment import AlignedUNet
from nnunetv2_mtg.gap import modality_gap
from nnunetv2_mtg.modalities import enumerate_subsets
from test_alignment import _net
from test_modalities import PAPER_ROWS

TEACHER = "nnUNetTrainerMTGTeacher_smoke"
MODEL = ["-d", "950", "-c", "3d_fullres", "-p", "nnUNetPlans_cpu_tiny", "-f", "0", "-device", "cpu"]


def _rows(path):
    with open(path, newline="") as f:
        return list(csv.DictReader(f))


@pytest.fixture(scope="module")
def test_cases(phantom, tmp_path_factory):
    """imagesTs/labelsTs plus one extra case whose label is missing."""
    root = tmp_path_factory.mktemp("cases")
    images, labels = root / "images", root / "labels"
    shutil.copytree(os.path.join(phantom["raw"], "imagesTs"), images)
    shutil.copytree(os.path.join(phantom["raw"], "labelsTs"), labels)
    first = sorted(os.listdir(images))[0].rsplit("_", 1)[0]
    for c in range(4):
        shutil.copy(images / f"{first}_{c:04d}.nii.gz", images / f"Unlabelled_{c:04d}.nii.gz")
    return {"images": str(images), "labels": str(labels)}


def test_bad_input(nnunet_env, mtg_teacher, tmp_path):
    p = run_cli(["nnUNetv2_mtg_evaluate", *MODEL, "-tr", "nnUNetTrainerNeverTrained"], nnunet_env, check=False)
    assert p.returncode != 0 and "nnUNetv2_train Dataset950_BraTSPhantom 3d_fullres 0 -tr nnUNetTrainerNeverTrained" \
        in p.stderr
    blocker = tmp_path / "a_file"
    blocker.write_text("x")
    p = run_cli(["nnUNetv2_mtg_evaluate", *MODEL, "-tr", TEACHER, "-o", str(blocker / "out")], nnunet_env,
                check=False)
    assert p.returncode != 0 and "is not writable" in p.stderr
    p = run_cli(["nnUNetv2_mtg_evaluate", *MODEL, "-tr", TEACHER, "-o", str(tmp_path / "o"), "--subsets", "T1+PD"],
                nnunet_env, check=False)
    assert p.returncode != 0 and "unknown modality subset 'T1+PD'" in p.stderr and "T1ce+FLAIR" in p.stderr
    assert not os.path.exists(tmp_path / "o" / TEACHER)  # nothing evaluated


def test_fifteen_subsets_match_nnunet_and_cache(nnunet_env, phantom, mtg_teacher, ignores_flair, test_cases,
                                                tmp_path):
    out = tmp_path / "eval"
    cmd = ["nnUNetv2_mtg_evaluate", *MODEL, "-tr", TEACHER, ignores_flair, "-o", str(out),
           "-i", test_cases["images"], "-l", test_cases["labels"], "--save_predictions"]
    p = run_cli(cmd, nnunet_env)
    assert "Unlabelled" in p.stderr  # warned about
    summary = _rows(out / TEACHER / "summary.csv")
    assert [r["subset"] for r in summary] == PAPER_ROWS + ["mean"]
    assert all(r["cases"] == "2" and r["skipped_no_label"] == "1" for r in summary)
    per_case = _rows(out / TEACHER / "per_case.csv")
    assert len(per_case) == 15 * 2 * 3 and {r["region"] for r in per_case} == {"WT", "TC", "ET"}
    md = (out / TEACHER / "summary.md").read_text()
    assert md.count("\n| ") == 18 and "Dice WT" in md  # header, separator, 15 subsets, mean
    for png in (out / TEACHER / "dice_heatmap.png", out / "comparison.png"):
        assert png.stat().st_size > 1000
    assert "Δ" in (out / "comparison.md").read_text()

    # the full-input row: the same segmentations as stock nnUNetv2_predict, and nnU-Net's own Dice on them
    stock = tmp_path / "stock"
    run_cli(["nnUNetv2_predict", "-i", os.path.join(phantom["raw"], "imagesTs"), "-o", str(stock), "-d", "950",
             "-c", "3d_fullres", "-tr", TEACHER, "-p", "nnUNetPlans_cpu_tiny", "-f", "0", "-device", "cpu",
             "--disable_tta", "-npp", "1", "-nps", "1"], nnunet_env)
    from nnunetv2.evaluation.evaluate_predictions import compute_metrics
    from nnunetv2.imageio.simpleitk_reader_writer import SimpleITKIO

    full = out / TEACHER / "predictions" / "T1_T1ce_T2_FLAIR"
    regions = {"WT": (1, 2, 3), "TC": (2, 3), "ET": (3,)}
    for case in sorted(os.listdir(test_cases["labels"])):
        ours = sitk.GetArrayFromImage(sitk.ReadImage(str(full / case)))
        assert np.array_equal(ours, sitk.GetArrayFromImage(sitk.ReadImage(str(stock / case))))
        nnunet = compute_metrics(os.path.join(test_cases["labels"], case), str(full / case), SimpleITKIO(),
                                 list(regions.values()))["metrics"]
        for name, region in regions.items():
            row = [r for r in per_case if r["case"] == case[:-7] and r["subset"] == "T1+T1ce+T2+FLAIR"
                   and r["region"] == name][0]
            expected = nnunet[region]["Dice"]
            assert float(row["dice"]) == pytest.approx(1.0 if np.isnan(expected) else expected, abs=1e-6)

    # a model that ignores FLAIR: adding FLAIR to any subset changes nothing
    flair = {r["subset"]: r for r in _rows(out / ignores_flair / "summary.csv")}
    for subset in ("T1", "T1ce", "T2", "T1+T1ce", "T1+T2", "T1ce+T2", "T1+T1ce+T2"):
        assert flair[subset]["dice_mean"] == flair[subset + "+FLAIR"]["dice_mean"]

    # interrupted run: one subset's cache is gone; only that subset is recomputed
    cache = out / TEACHER / "cache"
    stamps = {f: os.path.getmtime(cache / f) for f in os.listdir(cache) if f.endswith(".csv")}
    os.remove(cache / "T2.csv")
    run_cli(cmd[:-1], nnunet_env)
    assert _rows(out / TEACHER / "summary.csv") == summary
    for f, t in stamps.items():
        assert (os.path.getmtime(cache / f) == t) == (f != "T2.csv")


def test_gap_orders_a_channel_ignoring_model():
    """Constructed models: one whose first convolution ignores FLAIR, one that uses it."""
    torch.manual_seed(0)
    uses = AlignedUNet(_net("PlainConvUNet"))
    ignores = AlignedUNet(_net("PlainConvUNet"))
    ignores.load_state_dict(uses.state_dict())
    with torch.no_grad():
        ignores.encoder.stages[0][0].convs[0].conv.weight[:, 3] = 0
    patches = [torch.randn(1, 4, 32, 32, 32) for _ in range(2)]
    subsets = enumerate_subsets(["T1", "T1ce", "T2", "FLAIR"])
    gap_uses = modality_gap(uses, patches, subsets)
    gap_ignores = modality_gap(ignores, patches, subsets)
    assert len(gap_uses) == 14 and "T1+T1ce+T2+FLAIR" not in gap_uses
    assert gap_ignores["T1+T1ce+T2"][0] == pytest.approx(0.0, abs=1e-10)
    assert gap_ignores["T1+T1ce+T2"][1] == pytest.approx(1.0, abs=1e-6)
    assert gap_uses["T1+T1ce+T2"][0] > 1e-4 and gap_uses["T1+T1ce+T2"][1] < 1.0
    # without FLAIR the ignoring model has no gap, the other one has: opposite order for that subset
    assert gap_ignores["T1+T1ce+T2"][0] < gap_uses["T1+T1ce+T2"][0]
    assert gap_uses["FLAIR"][0] > gap_uses["T1+T1ce+T2"][0]


def test_gap_cli(nnunet_env, mtg_teacher, ignores_flair, tmp_path):
    run_cli(["nnUNetv2_mtg_gap", *MODEL, "-tr", TEACHER, ignores_flair, "-o", str(tmp_path)], nnunet_env)
    teacher = {r["subset"]: r for r in _rows(tmp_path / TEACHER / "gap.csv")}
    ignoring = {r["subset"]: r for r in _rows(tmp_path / ignores_flair / "gap.csv")}
    assert len(teacher) == 14
    assert float(ignoring["T1+T1ce+T2"]["nmse"]) < 1e-8 < float(teacher["T1+T1ce+T2"]["nmse"])
    assert (tmp_path / "gap.png").stat().st_size > 1000 and "nmse" in (tmp_path / "gap.md").read_text()
