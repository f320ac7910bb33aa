"""nnU-Net's 2d configuration with the cpu_2d preset: the default teacher and its student, and the first-block form,
through stock nnUNetv2_train, nnUNetv2_mtg_predict -c 2d (a missing channel file) and nnUNetv2_mtg_evaluate -c 2d."""
import csv
import os
import shutil

import numpy as np
import pytest
import SimpleITK as sitk
import torch

from conftest import PLANS_OF, check_prediction, checkpoint, predict, run_cli

PLANS = PLANS_OF["2d"]
TEACHER, STUDENT = "nnUNetTrainerMTGTeacher_500iters", "nnUNetTrainerMTGStudent_500iters"


@pytest.fixture(scope="session")
def phantom_2d(nnunet_env, phantom) -> dict:
    """The suite's phantom preprocessed for 2d as well, cpu_2d plans applied; the preset is refused before."""
    pre = os.path.join(nnunet_env["nnUNet_preprocessed"], phantom["name"])
    p = run_cli(["nnUNetv2_mtg_plans", "-d", str(phantom["id"]), "--preset", "cpu_2d"], nnunet_env, check=False)
    assert p.returncode != 0 and "configuration '2d' of nnUNetPlans_cpu_2d has no preprocessed data" in p.stderr
    assert f"nnUNetv2_plan_and_preprocess -d {phantom['id']} -c 2d" in p.stderr
    assert not os.path.exists(os.path.join(pre, PLANS + ".json"))  # refused before anything is written
    run_cli(["nnUNetv2_preprocess", "-d", str(phantom["id"]), "-c", "2d", "-np", "2"], nnunet_env)
    run_cli(["nnUNetv2_mtg_plans", "-d", str(phantom["id"]), "--preset", "cpu_2d"], nnunet_env)
    return phantom


def test_default_teacher_and_student_on_2d(nnunet_env, models, phantom_2d, tmp_path):
    t_fold = models.fold(phantom_2d, TEACHER, configuration="2d")
    t = checkpoint(t_fold)
    stem = t["network_weights"]["stem.block.0.weight"]
    assert stem.ndim == 4 and stem.shape[1] == 1  # a 2d convolution grouped by modality
    assert t["init_args"]["configuration"] == "2d"
    s_fold = models.fold(phantom_2d, STUDENT, configuration="2d", nnUNet_MTG_TEACHER=t_fold)
    s = checkpoint(s_fold)
    assert set(s["network_weights"]) == set(t["network_weights"])  # no teacher weights ride along
    for term in ("kd", "stem_latent", "anchor_align"):
        assert all(np.isfinite(s["logging"][f"train_{term}"])), term
    assert min(s["logging"]["train_stem_latent"]) > 0
    log = open(os.path.join(s_fold, sorted(f for f in os.listdir(s_fold) if f.startswith("training_log"))[-1])).read()
    assert f"teacher: {os.path.join(t_fold, 'checkpoint_final.pth')}" in log  # the 2d teacher it was given

    # the 15-subset evaluation of both on the test cases: both segment (an all-zero model scores 0)
    raw = phantom_2d["raw"]
    ev = tmp_path / "ev"
    run_cli(["nnUNetv2_mtg_evaluate", "-d", str(phantom_2d["id"]), "-c", "2d", "-p", PLANS, "-tr", STUDENT, TEACHER,
             "-f", "0", "-device", "cpu", "-i", os.path.join(raw, "imagesTs"), "-l", os.path.join(raw, "labelsTs"),
             "-o", str(ev), "--save_predictions"], nnunet_env)
    dice = {m: {r["subset"]: r for r in csv.DictReader(open(ev / m / "summary.csv"))} for m in (STUDENT, TEACHER)}
    for rows in dice.values():
        assert len(rows) == 16 and {r["folds"] for r in rows.values()} == {"1"}  # 15 subsets and their mean, 1 fold
    # the mean over the three regions at full input: WT alone of 2 cases after 500 iterations moves with each training
    for model in (TEACHER, STUDENT):
        assert float(dice[model]["T1+T1ce+T2+FLAIR"]["dice_mean"]) > 0.4, model

    # the modality gap and bypass check on the 2d teacher: its stem and every stage, each subset against the full input
    gap = tmp_path / "gap"
    run_cli(["nnUNetv2_mtg_gap", "-d", str(phantom_2d["id"]), "-c", "2d", "-p", PLANS, "-tr", TEACHER, "-f", "0",
             "-device", "cpu", "-i", os.path.join(raw, "imagesTs"), "-l", os.path.join(raw, "labelsTs"),
             "-o", str(gap)], nnunet_env)
    rows = list(csv.DictReader(open(gap / TEACHER / "gap.csv")))
    assert {r["representation"] for r in rows} >= {"stem", "stage 0", "stage 3"}
    assert len({r["subset"] for r in rows}) == 14
    bypass = {r["representation"]: float(r["changed_fraction"])
              for r in csv.DictReader(open(gap / TEACHER / "bypass.csv"))}
    assert bypass["stem"] > 0  # the decoder reads the stem: replacing it by the anchor changes tumour voxels

    # prediction from a case folder without its FLAIR file: the zero-filled channel, what the evaluation scored
    case = sorted(os.listdir(os.path.join(raw, "labelsTs")))[0][:-len(".nii.gz")]
    folder = tmp_path / "in"
    folder.mkdir()
    for c in range(3):
        shutil.copy(os.path.join(raw, "imagesTs", f"{case}_{c:04d}.nii.gz"), folder)
    out = tmp_path / "out"
    p = run_cli(["nnUNetv2_mtg_predict", "-i", str(folder), "-o", str(out), "-d", str(phantom_2d["id"]), "-c", "2d",
                 "-p", PLANS, "-tr", STUDENT, "-f", "0", "-device", "cpu", "--disable_tta", "-npp", "0", "-nps", "0",
                 "--save_png"], nnunet_env)
    assert f"{case}: T1+T1ce+T2 (missing: Flair)" in p.stdout
    assert sorted(os.listdir(out)) == sorted([f"{case}.nii.gz", f"{case}.png", "dataset.json", "plans.json",
                                              "predict_from_raw_data_args.json", "mtg_predict.json",
                                              "mtg_predict.csv"])
    pred = sitk.GetArrayFromImage(sitk.ReadImage(str(out / f"{case}.nii.gz")))
    scored = ev / STUDENT / "fold_0" / "predictions" / "T1_T1ce_T2" / f"{case}.nii.gz"
    assert np.array_equal(pred, sitk.GetArrayFromImage(sitk.ReadImage(str(scored))))
    assert pred.max() > 0


def test_demo_schedule_on_2d(models, phantom_2d, start_trainer):
    """`make demo` trains 2d: the teacher eight epochs there (one in 3d, test_ext_trainer), no test-time mirroring;
    the student five, starting from its teacher's weights (another schedule of the same student does not)."""
    from nnunetv2_mtg.alignment import unwrap

    demo = start_trainer(phantom_2d, "nnUNetTrainerMTGTeacher_demo", configuration="2d", plans=PLANS)
    assert demo.num_epochs == 8 and demo.num_iterations_per_epoch == 250
    assert tuple(demo.configure_rotation_dummyDA_mirroring_and_inital_patch_size()[-1]) == (0, 1)
    assert demo.inference_allowed_mirroring_axes is None

    t_fold = models.fold(phantom_2d, TEACHER, configuration="2d")
    teacher = os.path.join(t_fold, "checkpoint_final.pth")
    weights = checkpoint(t_fold)["network_weights"]
    for name, starts_from_teacher in (("nnUNetTrainerMTGStudent_demo", True),
                                      ("nnUNetTrainerMTGStudent_5epochs", False)):
        student = start_trainer(phantom_2d, name, configuration="2d", plans=PLANS, nnUNet_MTG_TEACHER=teacher)
        assert student.num_epochs == 5
        student.initialize()
        own = unwrap(student.network).state_dict()
        assert set(own) == set(weights)
        assert all(torch.equal(own[k].cpu(), weights[k]) for k in own) == starts_from_teacher, name


def test_first_block_form_on_2d(nnunet_env, models, phantom_2d, start_trainer, tmp_path):
    """The first-block teacher's round trip: trained (12 iterations: the structure is tested here, learning by the
    default form's test), its checkpoint predicted by stock nnUNetv2_predict (which rebuilds the grouped first block
    from the trainer name), and found by its student with the same form."""
    fold = models.fold(phantom_2d, "nnUNetTrainerMTGTeacherFirstBlock_12iters", configuration="2d")
    ckpt = checkpoint(fold)
    first = ckpt["network_weights"]["encoder.stages.0.0.convs.0.block.conv.weight"]
    assert first.shape == (16, 1, 3, 3)  # cpu_2d's 16 first-stage features, grouped by the 4 modalities
    assert "encoder.stages.0.0.convs.0.anchor.logits" in ckpt["network_weights"]
    assert not any(k.startswith("stem.") for k in ckpt["network_weights"])  # no stem in front of the encoder
    values = ckpt["logging"]["train_anchor_align"]
    assert all(np.isfinite(values)) and min(values) > 0

    raw = phantom_2d["raw"]
    out = tmp_path / "pred"
    predict(nnunet_env, phantom_2d, "nnUNetTrainerMTGTeacherFirstBlock_12iters", os.path.join(raw, "imagesTs"),
            str(out), "--save_probabilities", configuration="2d")
    check_prediction(str(out), os.path.join(raw, "imagesTs"), os.path.join(raw, "labelsTs"))
    student = start_trainer(phantom_2d, "nnUNetTrainerMTGStudentFirstBlock_12iters", configuration="2d", plans=PLANS)
    assert student.teacher_checkpoint == os.path.join(fold, "checkpoint_final.pth")
    assert student.form.name == "first-block-mixture"
    teacher_weights = student.teacher_network.state_dict()
    assert set(teacher_weights) == set(ckpt["network_weights"])
    assert all(torch.equal(teacher_weights[k].cpu(), v) for k, v in ckpt["network_weights"].items())
