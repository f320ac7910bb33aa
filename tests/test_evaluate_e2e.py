"""nnUNetv2_mtg_evaluate and nnUNetv2_mtg_gap on trained smoke models of the phantom."""
import csv
import os
import shutil

import numpy as np
import pytest
import SimpleITK as sitk
import torch

from conftest import predict, run_cli
from helpers import PAPER_ROWS, architecture, small_unet
from nnunetv2_mtg.alignment import AlignedUNet
from nnunetv2_mtg.gap import Probe, bypass, modality_gap
from nnunetv2_mtg.modalities import enumerate_subsets

TEACHER = "nnUNetTrainerMTGTeacherBottleneck_smoke"
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


def test_bad_input(nnunet_env, mtg_teacher, in_process, tmp_path):
    """The CLI's refusal (first case), and the others called in this process: the same exit, no process start."""
    from nnunetv2_mtg.evaluate import main

    p = run_cli(["nnUNetv2_mtg_evaluate", *MODEL, "-tr", "nnUNetTrainerNeverTrained"], nnunet_env, check=False)
    assert p.returncode != 0 and "nnUNetv2_train 950 3d_fullres 0 -tr nnUNetTrainerNeverTrained -p nnUNetPlans_cpu_tiny" \
        in p.stderr
    blocker = tmp_path / "a_file"
    blocker.write_text("x")
    with pytest.raises(SystemExit, match="nnUNetv2_mtg_evaluate: error: .*is not writable"):
        main([*MODEL, "-tr", TEACHER, "-o", str(blocker / "out")])
    with pytest.raises(SystemExit, match="unknown modality subset 'T1\\+PD'.*T1ce\\+FLAIR"):
        main([*MODEL, "-tr", TEACHER, "-o", str(tmp_path / "o"), "--subsets", "T1+PD"])
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
    assert all(r["cases"] == "2" and r["skipped_no_label"] == "1" and r["folds"] == "1" and r["fold_ids"] == "0"
               for r in summary)
    per_case = _rows(out / TEACHER / "per_case.csv")
    assert len(per_case) == 15 * 2 * 3 and {r["region"] for r in per_case} == {"WT", "TC", "ET"}
    md = (out / TEACHER / "summary.md").read_text()
    assert md.count("\n| ") == 18 and "Dice WT" in md  # header, separator, 15 subsets, mean
    for png in (out / TEACHER / "dice_heatmap.png", out / "comparison.png"):
        assert png.stat().st_size > 1000
    assert "Δ" in (out / "comparison.md").read_text()

    # the full-input row: the same segmentations as stock nnUNetv2_predict, and nnU-Net's own Dice on them
    stock = tmp_path / "stock"
    predict(nnunet_env, phantom, TEACHER, os.path.join(phantom["raw"], "imagesTs"), str(stock))
    from nnunetv2.evaluation.evaluate_predictions import compute_metrics
    from nnunetv2.imageio.simpleitk_reader_writer import SimpleITKIO

    full = out / TEACHER / "fold_0" / "predictions" / "T1_T1ce_T2_FLAIR"
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
    without_flair = ("T1", "T1ce", "T2", "T1+T1ce", "T1+T2", "T1ce+T2", "T1+T1ce+T2")
    for subset in without_flair:
        assert flair[subset]["dice_mean"] == flair[subset + "+FLAIR"]["dice_mean"]
    # the controls: that model's subsets are not all alike, and for the teacher, which reads FLAIR, adding it
    # changes some subset (a model predicting the same for every subset would pass the loop above)
    assert len({flair[s]["dice_mean"] for s in without_flair}) > 1
    by_subset = {r["subset"]: r for r in summary}
    assert any(by_subset[s]["dice_mean"] != by_subset[s + "+FLAIR"]["dice_mean"] for s in without_flair)

    # interrupted run: one subset's cache is gone; only that subset is recomputed
    cache = out / TEACHER / "fold_0" / "cache"
    stamps = {f: os.path.getmtime(cache / f) for f in os.listdir(cache) if f.endswith(".csv")}
    os.remove(cache / "T2.csv")
    run_cli(cmd[:-1], nnunet_env)
    assert _rows(out / TEACHER / "summary.csv") == summary
    for f, t in stamps.items():
        assert (os.path.getmtime(cache / f) == t) == (f != "T2.csv")


def test_centre_patch_in_3d_and_of_a_2d_network():
    from nnunetv2_mtg.gap import centre_patch

    data = torch.zeros(2, 9, 10, 12)
    data[1, 6, 4:7, 2:5] = torch.arange(9.0).view(3, 3) + 1  # the non-zero voxels, centred at (6, 5, 3)
    patch3d = centre_patch(data, (3, 4, 4))
    assert patch3d.shape == (1, 2, 3, 4, 4) and patch3d.sum() == data.sum()
    patch2d = centre_patch(data, (4, 4))  # a 2d network: the slice z = 6 through the centre
    assert patch2d.shape == (1, 2, 4, 4) and patch2d.sum() == data.sum()
    assert torch.equal(patch2d[0, 1, 1:4, 1:4], data[1, 6, 4:7, 2:5])
    seg = torch.zeros(1, 9, 10, 12)
    seg[0, 6, 5, 3] = 1
    assert centre_patch(seg, (4, 4), centre_of=data)[0, 0, 2, 2] == 1  # the matching patch of another array


def test_gap_orders_a_channel_ignoring_model():
    """Constructed models: one whose first convolution ignores FLAIR, one that uses it."""
    torch.manual_seed(0)
    uses = AlignedUNet(small_unet("PlainConvUNet"))
    ignores = AlignedUNet(small_unet("PlainConvUNet"))
    ignores.load_state_dict(uses.state_dict())
    with torch.no_grad():
        ignores.encoder.stages[0][0].convs[0].conv.weight[:, 3] = 0
    patches = [torch.randn(1, 4, 32, 32, 32) for _ in range(2)]
    subsets = enumerate_subsets(["T1", "T1ce", "T2", "FLAIR"])
    gap_uses = modality_gap(uses, patches, subsets)
    gap_ignores = modality_gap(ignores, patches, subsets)
    assert list(gap_uses) == ["stage 0", "stage 1", "stage 2", "stage 3"]
    for stage in gap_uses:  # every representation of a model that ignores FLAIR is unchanged without it
        assert len(gap_uses[stage]) == 14 and "T1+T1ce+T2+FLAIR" not in gap_uses[stage]
        assert gap_ignores[stage]["T1+T1ce+T2"][0] == pytest.approx(0.0, abs=1e-10)
        assert gap_ignores[stage]["T1+T1ce+T2"][1] == pytest.approx(1.0, abs=1e-6)
        assert gap_uses[stage]["T1+T1ce+T2"][0] > 1e-4 and gap_uses[stage]["T1+T1ce+T2"][1] < 1.0
    assert gap_uses["stage 3"]["FLAIR"][0] > gap_uses["stage 3"]["T1+T1ce+T2"][0]


def _region_labels():
    from nnunetv2.utilities.label_handling.label_handling import LabelManager

    return LabelManager({"background": 0, "whole tumor": [1, 2, 3], "tumor core": [2, 3], "enhancing tumor": 3},
                        regions_class_order=[1, 2, 3])


@pytest.mark.parametrize("kind", ["PlainConvUNet", "ResidualEncoderUNet"])
def test_bypass_zero_for_an_ignored_stage_positive_for_a_needed_one(kind):
    """A stock network built to ignore its bottleneck (the decoder's first transposed convolution has zero
    weights): replacing the bottleneck changes no voxel; replacing stage 0 (a skip it needs) changes many."""
    torch.manual_seed(0)
    net = small_unet(kind, deep_supervision=False)
    with torch.no_grad():
        net.decoder.transpconvs[0].weight.zero_()
        net.decoder.seg_layers[-1].bias.copy_(torch.tensor([0.2, 0.1, 0.0]))  # a foreground prediction to change
    patches = [torch.randn(1, 4, 32, 32, 32) for _ in range(2)]
    foregrounds = [torch.ones(32, 32, 32, dtype=torch.bool) for _ in patches]
    result = bypass(net, patches, foregrounds, _region_labels())
    assert set(result) == {"stage 0", "stage 1", "stage 2", "stage 3"}
    assert result["stage 3"] == (0.0, 2 * 32 ** 3)
    assert result["stage 0"][0] > 0.05
    # the probe leaves the network as it was: no hook remains, the output is the stock one
    assert not net.decoder._forward_pre_hooks and Probe(net).run(patches[0])[0].shape == (1, 3, 32, 32, 32)


def test_bypass_replaces_the_stem_by_its_anchor():
    """A stem network whose encoder sees only the anchor would predict the same for every input; replacing
    the stem of a network that uses its modalities changes the prediction."""
    from nnunetv2_mtg.forms import AlignmentForm, input_channels, wrap
    form = AlignmentForm((), tuple(architecture("PlainConvUNet")["features_per_stage"]), stem_anchor="gaussian",
                         stem_channels=4)
    inner = small_unet(deep_supervision=False, input_channels=input_channels(form, 4))
    net = wrap(form, inner, 4).eval()
    probe = Probe(net)
    assert probe.names[0] == "stem" and probe.aligned == {"stem"}
    x = torch.randn(1, 4, 32, 32, 32)
    _, reps = probe.run(x, replace="stem")
    with torch.no_grad():
        assert torch.equal(reps["stem"], net.stem(x))  # captured before the replacement
    assert net.stem.output is None  # in eval mode the stem keeps nothing
    result = bypass(net, [x], [torch.ones(32, 32, 32, dtype=torch.bool)], _region_labels())
    assert result["stem"][0] > 0.05


def test_gap_cli(nnunet_env, phantom, mtg_teacher, ignores_flair, stock_tiny, tmp_path):
    """The report on an aligned teacher and on a stock nnU-Net network (nnUNetTrainerTestTiny), stage by stage."""
    images, labels = os.path.join(phantom["raw"], "imagesTs"), os.path.join(phantom["raw"], "labelsTs")
    run_cli(["nnUNetv2_mtg_gap", *MODEL, "-tr", TEACHER, ignores_flair, "nnUNetTrainerTestTiny", "-o", str(tmp_path),
             "-i", images, "-l", labels], nnunet_env)
    teacher = {(r["representation"], r["subset"]): r for r in _rows(tmp_path / TEACHER / "gap.csv")}
    ignoring = {(r["representation"], r["subset"]): r for r in _rows(tmp_path / ignores_flair / "gap.csv")}
    assert len(teacher) == 4 * 14 and teacher[("stage 3", "T2")]["aligned"] == "True"
    assert teacher[("stage 0", "T2")]["aligned"] == "False"
    assert float(ignoring[("stage 3", "T1+T1ce+T2")]["nmse"]) < 1e-8 < float(teacher[("stage 3", "T1+T1ce+T2")]["nmse"])
    stock = {r["representation"]: r for r in _rows(tmp_path / "nnUNetTrainerTestTiny" / "bypass.csv")}
    assert list(stock) == ["stage 0", "stage 1", "stage 2", "stage 3"] and stock["stage 0"]["aligned"] == "False"
    assert all(0 <= float(r["changed_fraction"]) <= 1 and int(r["foreground_voxels"]) > 0 for r in stock.values())
    assert float(stock["stage 0"]["changed_fraction"]) > 0  # the decoder of a stock U-Net needs its top skip
    md = (tmp_path / "gap.md").read_text()
    assert "| nnUNetTrainerTestTiny | stage 0 | no |" in md and (tmp_path / "gap.png").stat().st_size > 1000
    # without labels: the bypass check counts the foreground of each model's own full-input prediction, and says so
    p = run_cli(["nnUNetv2_mtg_gap", *MODEL, "-tr", "nnUNetTrainerTestTiny", "-o", str(tmp_path / "x"), "-i", images],
                nnunet_env)
    assert "no case has a label file" in p.stdout
    assert "voxels the full-input prediction calls foreground" in (tmp_path / "x" / "gap.md").read_text()
    own = {r["representation"]: r for r in _rows(tmp_path / "x" / "nnUNetTrainerTestTiny" / "bypass.csv")}
    assert int(own["stage 0"]["foreground_voxels"]) > 0 and float(own["stage 0"]["changed_fraction"]) > 0
    assert own["stage 0"]["foreground_voxels"] != stock["stage 0"]["foreground_voxels"]


def test_fold_validation_cases_as_nnunet_validated_them(nnunet_env, phantom, mtg_teacher, tmp_path):
    """Without -i/-l, the fold's validation cases from splits_final.json (from the raw images, labelsTr): exactly
    those cases, and at full input the Dice nnU-Net's own final validation of the fold gave each case."""
    import json

    out = tmp_path / "val"
    run_cli(["nnUNetv2_mtg_evaluate", *MODEL, "-tr", TEACHER, "-o", str(out), "--subsets", "T1+T2",
             "T1+T1ce+T2+FLAIR"], nnunet_env)
    splits = json.load(open(os.path.join(nnunet_env["nnUNet_preprocessed"], phantom["name"], "splits_final.json")))
    rows = _rows(out / TEACHER / "per_case.csv")
    assert sorted({r["case"] for r in rows}) == sorted(splits[0]["val"])
    assert {r["subset"] for r in rows} == {"T1+T2", "T1+T1ce+T2+FLAIR"}
    validated = json.load(open(os.path.join(mtg_teacher, "validation", "summary.json")))["metric_per_case"]
    assert len(validated) == len(splits[0]["val"])
    for entry in validated:
        case = os.path.basename(entry["prediction_file"])[: -len(".nii.gz")]
        for name, keys in (("WT", ("(1, 2, 3)",)), ("TC", ("(2, 3)",)), ("ET", ("3", "(3,)"))):
            ours = [r for r in rows if r["case"] == case and r["subset"] == "T1+T1ce+T2+FLAIR" and r["region"] == name]
            expected = [entry["metrics"][k]["Dice"] for k in keys if k in entry["metrics"]][0]
            assert float(ours[0]["dice"]) == pytest.approx(1.0 if np.isnan(expected) else expected, abs=1e-4), \
                (case, name)
