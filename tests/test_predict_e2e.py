"""nnUNetv2_mtg_predict on the phantom with a smoke-trained model: stock equivalence, missing channels, BraTS names
and labels, the record, and every bad input."""
import csv
import json
import os
import shutil

import numpy as np
import pytest
import SimpleITK as sitk

from conftest import predict, run_cli

TEACHER = "nnUNetTrainerMTGTeacherBottleneck_smoke"
# nnU-Net's sequential path (-npp 0 -nps 0) unless a test needs its worker processes, which take longer to start
# than these two-case predictions take
MODEL = ["-d", "950", "-c", "3d_fullres", "-p", "nnUNetPlans_cpu_tiny", "-f", "0", "-device", "cpu", "--disable_tta",
         "-npp", "0", "-nps", "0"]
BRATS_2023 = {0: "t1n", 1: "t1c", 2: "t2w", 3: "t2f"}
BRATS_2021 = {0: "t1", 1: "t1ce", 2: "t2", 3: "flair"}


def _seg(path):
    return sitk.GetArrayFromImage(sitk.ReadImage(str(path)))


@pytest.fixture(scope="module")
def cases(phantom):
    images = os.path.join(phantom["raw"], "imagesTs")
    return sorted({f.rsplit("_", 1)[0] for f in os.listdir(images)}), images


def _mtg_predict(env, images, out, *extra, trainer=TEACHER, check=True):
    return run_cli(["nnUNetv2_mtg_predict", "-i", str(images), "-o", str(out), "-tr", trainer, *MODEL, *extra], env,
                   check=check)


def test_full_case_as_stock_missing_channels_as_evaluate(nnunet_env, phantom, default_teacher, cases, tmp_path):
    """The default form (a stem that substitutes missing modalities itself): full input as stock nnUNetv2_predict,
    missing files as nnUNetv2_mtg_evaluate's zeroed channels; after the evaluation, the expected Dice per case."""
    (full, partial), images = cases
    teacher = default_teacher
    folder = tmp_path / "in"
    folder.mkdir()
    for c in range(4):
        shutil.copy(os.path.join(images, f"{full}_{c:04d}.nii.gz"), folder)
        if c in (0, 2):  # the second case has T1 and T2 only
            shutil.copy(os.path.join(images, f"{partial}_{c:04d}.nii.gz"), folder)
    before = sorted(os.listdir(folder))
    model = os.path.join(nnunet_env["nnUNet_results"], phantom["name"], f"{teacher}__nnUNetPlans_cpu_tiny__3d_fullres")
    if os.path.exists(os.path.join(model, "mtg_subsets.json")):
        os.remove(os.path.join(model, "mtg_subsets.json"))
    p = _mtg_predict(nnunet_env, folder, tmp_path / "out", trainer=teacher)
    assert sorted(os.listdir(folder)) == before  # the input is never touched
    assert f"{partial}: T1+T2 (missing: T1ce+Flair)" in p.stdout
    assert "no evaluation of this model" in p.stdout and f"nnUNetv2_mtg_evaluate -d 950 -c 3d_fullres -p " \
        f"nnUNetPlans_cpu_tiny -tr {teacher} -f 0" in p.stdout

    stock = tmp_path / "stock"
    one = tmp_path / "one"
    one.mkdir()
    for c in range(4):
        shutil.copy(os.path.join(images, f"{full}_{c:04d}.nii.gz"), one)
    predict(nnunet_env, phantom, teacher, str(one), str(stock))
    assert np.array_equal(_seg(tmp_path / "out" / f"{full}.nii.gz"), _seg(stock / f"{full}.nii.gz"))
    ours, theirs = sitk.ReadImage(str(tmp_path / "out" / f"{full}.nii.gz")), sitk.ReadImage(str(stock / f"{full}.nii.gz"))
    assert ours.GetSpacing() == theirs.GetSpacing() and ours.GetOrigin() == theirs.GetOrigin()

    ev = tmp_path / "ev"
    run_cli(["nnUNetv2_mtg_evaluate", "-d", "950", "-c", "3d_fullres", "-p", "nnUNetPlans_cpu_tiny", "-tr", teacher,
             "-f", "0", "-device", "cpu", "-i", images, "-l", os.path.join(phantom["raw"], "labelsTs"), "-o", str(ev),
             "--subsets", "T1+T2", "T1+T1ce+T2+FLAIR", "--save_predictions"], nnunet_env)
    assert np.array_equal(_seg(tmp_path / "out" / f"{partial}.nii.gz"),
                          _seg(ev / teacher / "fold_0" / "predictions" / "T1_T2" / f"{partial}.nii.gz"))
    summary = json.load(open(os.path.join(model, "mtg_subsets.json")))  # the evaluation, kept beside the model
    assert set(summary["subsets"]) == {"T1+T2", "T1+T1ce+T2+FLAIR"} and summary["folds"] == [0]
    assert summary["cases"] == 2 and summary["subsets"]["T1+T2"]["mask"] == [True, False, True, False]
    evaluated = {r["subset"]: r for r in csv.DictReader(open(ev / teacher / "summary.csv"))}
    assert summary["subsets"]["T1+T2"]["dice"]["ET"] == pytest.approx(float(evaluated["T1+T2"]["dice_ET"]), abs=1e-4)

    record = json.load(open(tmp_path / "out" / "mtg_predict.json"))
    rows = {r["case"]: r for r in record["cases"]}
    assert rows[full]["channels_used"] == "T1+T1ce+T2+Flair" and rows[full]["channels_missing"] == ""
    assert rows[partial]["channels_used"] == "T1+T2" and rows[partial]["channels_missing"] == "T1ce+Flair"
    assert rows[partial]["file"] == str(tmp_path / "out" / f"{partial}.nii.gz") and not rows[partial]["warning"]
    assert record["model"]["trained_subsets"] == "all" and record["model"]["expected_dice_from"] is None
    assert (tmp_path / "out" / "mtg_predict.csv").read_text().count("\n") == 3

    # --continue_prediction: nothing predicted again; the evaluation now gives each case its expected Dice
    stamp = os.path.getmtime(tmp_path / "out" / f"{full}.nii.gz")
    p = _mtg_predict(nnunet_env, folder, tmp_path / "out", "--continue_prediction", trainer=teacher)
    assert "0 case(s) predicted, 2 already there" in p.stdout
    assert os.path.getmtime(tmp_path / "out" / f"{full}.nii.gz") == stamp
    rows = {r["case"]: r for r in json.load(open(tmp_path / "out" / "mtg_predict.json"))["cases"]}
    dice = summary["subsets"]["T1+T2"]["dice"]
    assert rows[partial]["expected_dice"] == " / ".join(f"{r} {100 * dice[r]:.0f}" for r in ("WT", "TC", "ET"))
    assert f"expected Dice {rows[partial]['expected_dice']}" in p.stdout
    full_dice = summary["subsets"]["T1+T1ce+T2+FLAIR"]["dice"]
    weak = [r for r in ("WT", "TC", "ET") if 100 * (full_dice[r] - dice[r]) > 10]
    assert ("T1ce + Flair missing: expected" in rows[partial]["warning"]) == bool(weak)
    for r in weak:
        assert f"expected {r} Dice {100 * dice[r]:.0f} vs {100 * full_dice[r]:.0f} with all modalities" in p.stdout


def test_brats_names_and_labels(nnunet_env, phantom, mtg_teacher, stock_tiny, cases, tmp_path):
    (full, partial), images = cases
    # 2023 naming, one folder per case; the second case lacks T1ce
    per_case = tmp_path / "brats2023"
    for case, ident in ((full, "BraTS-GLI-00001-000"), (partial, "BraTS-GLI-00002-000")):
        (per_case / ident).mkdir(parents=True)
        for c, suffix in BRATS_2023.items():
            if not (case == partial and c == 1):
                shutil.copy(os.path.join(images, f"{case}_{c:04d}.nii.gz"), per_case / ident / f"{ident}-{suffix}.nii.gz")
    # on nnU-Net's path with worker processes, the default of nnUNetv2_mtg_predict
    _mtg_predict(nnunet_env, per_case, tmp_path / "out2023", "--brats-names", "--brats-labels", "2023", "-npp", "1",
                 "-nps", "1")
    out = tmp_path / "out2023"
    assert sorted(f for f in os.listdir(out) if f.endswith(".nii.gz")) == ["BraTS-GLI-00001-000.nii.gz",
                                                                         "BraTS-GLI-00002-000.nii.gz"]
    assert not (out / ".mtg_predict_staging").exists()
    # the same case with dataset labels (1 edema, 2 necrosis, 3 enhancing) -> 2023: 2 SNFH, 1 NETC, 3 ET
    plain = tmp_path / "plain"
    _mtg_predict(nnunet_env, per_case / "BraTS-GLI-00001-000", plain, "--brats-names")
    dataset_labels = _seg(plain / "BraTS-GLI-00001-000.nii.gz")
    assert np.array_equal(_seg(out / "BraTS-GLI-00001-000.nii.gz"), np.array([0, 2, 1, 3])[dataset_labels])
    rows = {r["case"]: r for r in json.load(open(out / "mtg_predict.json"))["cases"]}
    assert rows["BraTS-GLI-00002-000"]["channels_missing"] == "T1ce"

    # 2018-2021 naming, flat; restricted to T2 and FLAIR; a stock model, which never saw a missing modality
    flat = tmp_path / "brats2021"
    flat.mkdir()
    for c, suffix in BRATS_2021.items():
        shutil.copy(os.path.join(images, f"{full}_{c:04d}.nii.gz"), flat / f"BraTS2021_00001_{suffix}.nii.gz")
    p = _mtg_predict(nnunet_env, flat, tmp_path / "out2021", "--brats-names", "--brats-labels", "2021",
                     "--modalities", "T2", "t2f", trainer=stock_tiny)
    seg = _seg(tmp_path / "out2021" / "BraTS2021_00001.nii.gz")
    assert set(np.unique(seg)) <= {0, 1, 2, 4}
    row = json.load(open(tmp_path / "out2021" / "mtg_predict.json"))["cases"][0]
    assert row["channels_used"] == "T2+Flair" and "trained on T1+T1ce+T2+Flair only" in row["warning"]
    assert "WARNING" in p.stdout


def test_bad_input_is_refused_before_any_output(nnunet_env, phantom, mtg_teacher, cases, in_process, tmp_path):
    """Every check runs before the first output; the CLI prints the refusal as one line (shown for the first case),
    the others are called in this process (nnUNetv2_mtg_predict's own main: the same exit, no process start)."""
    from nnunetv2_mtg.predict import main

    (full, partial), images = cases
    out = tmp_path / "out"

    def refused(folder, message, *extra, trainer=TEACHER, model=None, cli=False):
        args = ["-i", str(folder), "-o", str(out), "-tr", trainer, *(model or MODEL), *extra]
        if cli:
            p = run_cli(["nnUNetv2_mtg_predict", *args], nnunet_env, check=False)
            assert p.returncode != 0 and message in p.stderr, p.stderr[-2000:]
            assert "Traceback" not in p.stderr
        else:
            with pytest.raises(SystemExit) as e:  # not another exception: the refusal is a clear message
                main(args)
            assert str(e.value.code).startswith("nnUNetv2_mtg_predict: error: ") and message in str(e.value.code)
        assert not out.exists()

    good = tmp_path / "good"
    good.mkdir()
    for c in range(4):
        shutil.copy(os.path.join(images, f"{full}_{c:04d}.nii.gz"), good)
    # a case whose files do not share a grid: the message names both files
    shifted = tmp_path / "shifted"
    shutil.copytree(good, shifted)
    img = sitk.ReadImage(str(shifted / f"{full}_0002.nii.gz"))
    img.SetOrigin(tuple(o + 3 for o in img.GetOrigin()))
    sitk.WriteImage(img, str(shifted / f"{full}_0002.nii.gz"))
    refused(shifted, f"differ in origin: {shifted / (full + '_0000.nii.gz')}", cli=True)
    # a BraTS folder with a file it does not know
    brats = tmp_path / "brats"
    brats.mkdir()
    shutil.copy(os.path.join(images, f"{full}_0000.nii.gz"), brats / "BraTS-GLI-00001-000-t1n.nii.gz")
    shutil.copy(os.path.join(images, f"{full}_0001.nii.gz"), brats / "BraTS-GLI-00001-000-t1gd.nii.gz")
    refused(brats, "Known modality suffixes: -t1n, -t1c, -t2w, -t2f", "--brats-names")
    refused(good, "--modalities PD: the dataset has no such channel", "--modalities", "T2", "PD")
    # a case with no usable channel file: it has T1 only, and only T2 is asked for
    t1_only = tmp_path / "t1_only"
    t1_only.mkdir()
    shutil.copy(os.path.join(images, f"{full}_0000.nii.gz"), t1_only)
    refused(t1_only, f"case {full} has no usable channel file", "--modalities", "T2")
    # a file of a channel the dataset does not have
    odd = tmp_path / "odd"
    odd.mkdir()
    shutil.copy(os.path.join(images, f"{full}_0000.nii.gz"), odd / f"{full}_0007.nii.gz")
    refused(odd, "channel 7 does not exist, the dataset has channels 0..3")
    # -o is the input folder, or inside it
    out_inside = good / "pred"
    with pytest.raises(SystemExit, match="is the input folder or inside it"):
        main(["-i", str(good), "-o", str(out_inside), "-tr", TEACHER, *MODEL])
    assert not out_inside.exists()
    # --brats-labels on a dataset whose labels are not tumour sub-regions
    organs = os.path.join(nnunet_env["nnUNet_results"], "Dataset953_Organs")
    shutil.copytree(os.path.dirname(mtg_teacher), os.path.join(organs, os.path.basename(os.path.dirname(mtg_teacher))))
    for path in (os.path.join(organs, os.path.basename(os.path.dirname(mtg_teacher)), "dataset.json"),):
        dj = json.load(open(path))
        dj.update(labels={"background": 0, "liver": 1, "spleen": [1, 2], "kidney": 2}, regions_class_order=[1, 2, 3])
        json.dump(dj, open(path, "w"))
    os.makedirs(os.path.join(nnunet_env["nnUNet_raw"], "Dataset953_Organs"), exist_ok=True)
    refused(good, "are not the nested BraTS regions", "--brats-labels", "2021",
            model=["-d", "953"] + MODEL[2:])
    # a whole case of zeros: refused with its files named, nothing predicted from it
    zeros = tmp_path / "zeros"
    zeros.mkdir()
    for c in range(4):
        img = sitk.ReadImage(os.path.join(images, f"{full}_{c:04d}.nii.gz"))
        blank = sitk.Image(img.GetSize(), img.GetPixelID())
        blank.CopyInformation(img)
        sitk.WriteImage(blank, str(zeros / f"{full}_{c:04d}.nii.gz"))
    p = _mtg_predict(nnunet_env, zeros, out, check=False)
    assert p.returncode != 0 and "every channel of this case is zero everywhere" in p.stderr
    assert not (out / f"{full}.nii.gz").exists()
    # ... also on nnU-Net's path with worker processes (-npp 1 -nps 1)
    p = run_cli(["nnUNetv2_mtg_predict", "-i", str(zeros), "-o", str(out), "-tr", TEACHER, *MODEL[:-4], "-npp", "1",
                 "-nps", "1"], nnunet_env, check=False)
    assert p.returncode != 0 and "every channel of this case is zero everywhere" in p.stderr
    assert not (out / f"{full}.nii.gz").exists()
    shutil.rmtree(out, ignore_errors=True)

    # no input folder, unknown dataset, a model or fold that was never trained
    refused(tmp_path / "nowhere", "input folder")
    refused(good, "Could not find a dataset with the ID 977", model=["-d", "977"] + MODEL[2:])
    refused(good, "no trained model in", trainer="nnUNetTrainerModalityDropout_250epochs")
    refused(good, "does not exist: train fold 3 first", model=MODEL[:6] + ["-f", "3"] + MODEL[8:])
    # a file not named CASE_XXXX
    loose = tmp_path / "loose"
    shutil.copytree(good, loose)
    shutil.copy(os.path.join(images, f"{full}_0000.nii.gz"), loose / "scan.nii.gz")
    refused(loose, "is not named CASE_XXXX")
    # two BraTS files for one channel of one case (flat, and in the case's own folder)
    twice = tmp_path / "twice"
    (twice / "BraTS-GLI-00001-000").mkdir(parents=True)
    for c, suffix in BRATS_2023.items():
        shutil.copy(os.path.join(images, f"{full}_{c:04d}.nii.gz"), twice / f"BraTS-GLI-00001-000-{suffix}.nii.gz")
    shutil.copy(os.path.join(images, f"{full}_0001.nii.gz"),
                twice / "BraTS-GLI-00001-000" / "BraTS-GLI-00001-000-t1c.nii.gz")
    refused(twice, "case BraTS-GLI-00001-000 has two T1ce files", "--brats-names")
    # channel files of another size, or another direction
    for what in ("size", "direction"):
        bad = tmp_path / what
        shutil.copytree(good, bad)
        img = sitk.ReadImage(str(bad / f"{full}_0003.nii.gz"))
        if what == "size":
            img = img[:-2, :, :]
        else:
            img.SetDirection((-1.0, 0.0, 0.0, 0.0, 1.0, 0.0, 0.0, 0.0, 1.0))
        sitk.WriteImage(img, str(bad / f"{full}_0003.nii.gz"))
        refused(bad, f"the channel files differ in {what}")
    # --brats-names on a dataset whose channels are not the BraTS modalities
    other = os.path.join(nnunet_env["nnUNet_results"], "Dataset954_Other")
    shutil.copytree(os.path.dirname(mtg_teacher), os.path.join(other, os.path.basename(os.path.dirname(mtg_teacher))))
    path = os.path.join(other, os.path.basename(os.path.dirname(mtg_teacher)), "dataset.json")
    dj = json.load(open(path))
    dj["channel_names"] = dj["mtg_modalities"] = {"0": "CT", "1": "PET", "2": "MR", "3": "US"}
    json.dump(dj, open(path, "w"))
    os.makedirs(os.path.join(nnunet_env["nnUNet_raw"], "Dataset954_Other"), exist_ok=True)
    refused(twice, "--brats-names needs a dataset with the BraTS modalities", "--brats-names",
            model=["-d", "954"] + MODEL[2:])
