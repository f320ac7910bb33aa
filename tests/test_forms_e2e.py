"""Every alignment form and the ProtoKD baseline through stock nnUNetv2_train, --c and nnUNetv2_predict (with the
quick `_12iters` variants of tests/ext_trainers: one epoch of 12 iterations; the `_smoke` schedule itself is tested
with the bottleneck form in test_teacher_e2e and test_student_e2e)."""
import os

import numpy as np
import pytest
from PIL import Image

from conftest import (check_prediction, checkpoint, epochs_in_new_logs, fold_folder, predict, run_cli, train,
                      train_interrupted)
from nnunetv2_mtg.env import UserInputError

# the default form (the mixture stem) end to end: tests/test_2d_e2e.py, and its resumed 3d run below
FORMS = {"AllStages": ("align.", "kl_align", "kl_latent"), "Gaussian": ("stem.", "anchor_align", "stem_latent")}


@pytest.mark.parametrize("form", list(FORMS))
def test_form_teacher_and_student(nnunet_env, models, phantom, one_case, form, tmp_path):
    prefix, align_term, latent_term = FORMS[form]
    teacher, student = f"nnUNetTrainerMTGTeacher{form}_12iters", f"nnUNetTrainerMTGStudent{form}_12iters"
    t_fold = models.fold(phantom, teacher)
    t = checkpoint(t_fold)
    assert any(k.startswith(prefix) for k in t["network_weights"])
    values = t["logging"][f"train_{align_term}"]
    assert len(values) == 1 and all(np.isfinite(values))
    assert Image.open(os.path.join(t_fold, "progress.png")).size[1] == 7200  # the panel of the extra terms
    log = "".join(open(os.path.join(t_fold, f)).read() for f in os.listdir(t_fold) if f.startswith("training_log"))
    assert f"train_{align_term}" in log and "alignment form: " in log

    s_fold = models.fold(phantom, student)
    s = checkpoint(s_fold)
    assert set(s["network_weights"]) == set(t["network_weights"])  # no teacher weights ride along
    for term in ("kd", latent_term, align_term):
        values = s["logging"][f"train_{term}"]
        assert len(values) == 1 and all(np.isfinite(values)), term
    assert s["logging"][f"train_{latent_term}"][0] > 0

    out = tmp_path / "pred"
    predict(nnunet_env, phantom, student, one_case, str(out), "--save_probabilities")
    check_prediction(str(out), one_case, os.path.join(phantom["raw"], "labelsTs"))


def test_default_teacher_and_student_resume_a_real_interruption(nnunet_env, phantom):
    """The default form's teacher, then its student (which finds that teacher by itself), each killed as its second
    epoch starts: --c resumes from the checkpoint_latest.pth nnU-Net wrote, trains the second epoch only and keeps
    the first epoch's loss terms; the resumed student learns from the same teacher."""
    teacher_fold = fold_folder(nnunet_env, phantom, "nnUNetTrainerTestTeacherTwoEpochs")
    for trainer, term in (("nnUNetTrainerTestTeacherTwoEpochs", "anchor_align"),
                          ("nnUNetTrainerTestStudentTwoEpochs", "stem_latent")):
        fold = fold_folder(nnunet_env, phantom, trainer)
        old_logs = train_interrupted(nnunet_env, phantom, trainer)
        latest = checkpoint(fold, "checkpoint_latest.pth")
        assert latest["current_epoch"] == 1 and len(latest["logging"][f"train_{term}"]) == 1
        train(nnunet_env, phantom, trainer, "--c")
        after = checkpoint(fold)
        assert after["current_epoch"] == 2 and len(after["logging"][f"train_{term}"]) == 2
        assert after["logging"][f"train_{term}"][0] == latest["logging"][f"train_{term}"][0]  # restored, not retrained
        assert after["logging"][f"train_{term}"][1] != latest["logging"][f"train_{term}"][0]
        assert epochs_in_new_logs(fold, old_logs) == [1]
    logs = [open(os.path.join(fold, f)).read() for f in sorted(os.listdir(fold)) if f.startswith("training_log")]
    assert len(logs) == 2 and all(f"teacher: {teacher_fold}/checkpoint_final.pth" in log for log in logs)


def test_protokd_student(nnunet_env, models, phantom, dropout_teacher, one_case, tmp_path):
    trainer = "nnUNetTrainerProtoKDStudent_12iters"
    ckpt = checkpoint(models.fold(phantom, trainer))  # its paired teacher: the dropout teacher of the same schedule
    assert not any(k.startswith(("align.", "stem.")) for k in ckpt["network_weights"])  # stock network
    assert ckpt["init_args"]["dataset_json"]["labels"]
    for term in ("kd", "proto"):
        values = ckpt["logging"][f"train_{term}"]
        assert len(values) == 1 and all(np.isfinite(values)) and values[0] > 0, term
    out = tmp_path / "pred"
    predict(nnunet_env, phantom, trainer, one_case, str(out), "--save_probabilities")
    check_prediction(str(out), one_case, os.path.join(phantom["raw"], "labelsTs"))


def test_form_errors_before_any_output(nnunet_env, models, phantom, start_trainer):
    results = os.path.join(nnunet_env["nnUNet_results"], phantom["name"])
    # stock nnUNetv2_train names the class and the attribute
    p = train(nnunet_env, phantom, "nnUNetTrainerTestBadAnchor", check=False)
    assert p.returncode != 0 and "stem_anchor = 'gauss': unknown anchor kind" in p.stderr
    assert "nnUNetTrainerTestBadAnchor" in p.stderr
    bad_stage = r"nnUNetTrainerTestBadStage.aligned_stages: stage\(s\) \[9\] do not exist"
    with pytest.raises(UserInputError, match=bad_stage):
        start_trainer(phantom, "nnUNetTrainerTestBadStage")
    for trainer in ("nnUNetTrainerTestBadAnchor", "nnUNetTrainerTestBadStage"):
        assert not os.path.exists(os.path.join(results, f"{trainer}__nnUNetPlans_cpu_tiny__3d_fullres"))

    # a student whose teacher has another form: both forms and the command for the right teacher are named
    student = "nnUNetTrainerMTGStudentGaussian_smoke"
    teacher = models.fold(phantom, "nnUNetTrainerMTGTeacherAllStages_12iters")
    before = sorted(os.listdir(results))
    with pytest.raises(UserInputError) as e:
        start_trainer(phantom, student, fold=1, nnUNet_MTG_TEACHER=teacher)
    assert "has the alignment form 'all-stages', the student 'stem-gaussian'" in str(e.value)
    assert f"nnUNetv2_train {phantom['id']} 3d_fullres 1 -tr nnUNetTrainerMTGTeacherGaussian_smoke" in str(e.value)
    assert sorted(os.listdir(results)) == before
    assert not os.path.exists(fold_folder(nnunet_env, phantom, student).replace("fold_0", "fold_1"))


def test_the_default_trainers_have_the_measured_default_form():
    """README and docs/RESULTS.md say which form the plain MTG trainers use (the mixture stem, raw loss, weight 0.1,
    tables of it written as `...MixtureRawLoss` are read as theirs); the classes must agree, the default has no
    second name, and the named invariant form and its student keep the form the experiment measured under their names."""
    from nnunetv2_mtg.forms import read_form
    from nnunetv2_mtg.trainers import nnUNetTrainerMTGStudent as students
    from nnunetv2_mtg.trainers import nnUNetTrainerMTGTeacher as teachers

    arch = {"n_stages": 4, "features_per_stage": [8, 16, 32, 64]}
    expected = read_form(teachers.nnUNetTrainerMTGTeacher, arch, 4)
    for trainer in (teachers.nnUNetTrainerMTGTeacherNoAlign, students.nnUNetTrainerMTGStudent,
                    students.nnUNetTrainerMTGStudent_T2):
        assert read_form(trainer, arch, 4) == expected
    for module, plain in ((teachers, ["nnUNetTrainerMTGTeacher", "nnUNetTrainerMTGTeacherNoAlign"]),
                          (students, ["nnUNetTrainerMTGStudent"])):  # one name per model
        named = [n for n in dir(module) if n.startswith(plain[0]) and "_" not in n]  # not the schedule variants
        assert [n for n in named if read_form(getattr(module, n), arch, 4) == expected] == plain
    assert expected.name == "stem-mixture-raw-loss" and expected.stem_channels == 4
    assert teachers.nnUNetTrainerMTGTeacher.lambda_align == 0.1 and teachers.nnUNetTrainerMTGTeacherNoAlign.lambda_align == 0
    for trainer in (teachers.nnUNetTrainerMTGTeacherMixture, students.nnUNetTrainerMTGStudentMixture):
        form = read_form(trainer, arch, 4)
        assert (form.name, form.loss_kind, trainer.lambda_align) == ("stem-mixture", "invariant", 0.1)
    assert read_form(teachers.nnUNetTrainerMTGTeacherStandin, arch, 4).loss_kind == "invariant"


def test_refuses_what_missing_as_zero_cannot_serve(nnunet_env, phantom, start_trainer):
    """CT normalisation (an all-zero image is not 0 after it) and a cascade stage (its extra input channels are not
    modalities) are refused before nnU-Net creates any folder: by stock nnUNetv2_train, and for every trainer and
    configuration by the trainer start nnUNetv2_train makes."""
    import json

    pre = os.path.join(nnunet_env["nnUNet_preprocessed"], phantom["name"])
    with open(os.path.join(pre, "nnUNetPlans_cpu_tiny.json")) as f:
        plans = json.load(f)
    plans["plans_name"] = "nnUNetPlans_refused"
    plans["configurations"]["3d_fullres"]["normalization_schemes"][1] = "CTNormalization"
    plans["configurations"]["3d_cascade_fullres"] = {"inherits_from": "3d_fullres", "previous_stage": "3d_lowres"}
    with open(os.path.join(pre, "nnUNetPlans_refused.json"), "w") as f:
        json.dump(plans, f)
    results = os.path.join(nnunet_env["nnUNet_results"], phantom["name"])
    ct = ("channel 1 (T1ce) uses CTNormalization", "ZScoreNormalization")
    p = run_cli(["nnUNetv2_train", str(phantom["id"]), "3d_fullres", "0", "-tr", "nnUNetTrainerMTGTeacher_smoke", "-p",
                 "nnUNetPlans_refused", "-device", "cpu"], nnunet_env, check=False)
    assert p.returncode != 0 and all(m in p.stderr for m in ct), p.stderr[-2000:]
    for configuration, messages in (("3d_fullres", ct), ("3d_cascade_fullres", ("cannot train the cascade "
                                                                                "configuration",))):
        for trainer in ("nnUNetTrainerModalityDropout_smoke", "nnUNetTrainerMTGTeacher_smoke"):
            with pytest.raises(UserInputError) as e:
                start_trainer(phantom, trainer, configuration=configuration, plans="nnUNetPlans_refused")
            assert all(m in str(e.value) for m in messages), str(e.value)
            assert not os.path.exists(os.path.join(results, f"{trainer}__nnUNetPlans_refused__{configuration}"))


USER_FORM = '''
from nnunetv2_mtg.trainers.nnUNetTrainerMTGStudent import declare_form


class WideRawStem:
    """A user's form: the mixture stem with 8 features per modality, the raw loss at weight 0.3."""

    aligned_stages = ()
    stem_anchor = "mixture"
    stem_channels_per_modality = 8
    anchor_loss = "raw"
    lambda_align = 0.3


declare_form(globals(), "WideRaw", WideRawStem)
'''


def test_a_form_of_your_own_is_one_declaration(nnunet_env, phantom, start_trainer, tmp_path):
    """One mixin and one declare_form call in a file of the user's nnUNet_extTrainer folder give the teacher, its
    student (taught by that teacher) and the schedule variants, found by stock nnU-Net's trainer lookup."""
    (tmp_path / "my_forms.py").write_text(USER_FORM)
    ext = os.pathsep.join([nnunet_env["nnUNet_extTrainer"], str(tmp_path)])
    teacher = start_trainer(phantom, "nnUNetTrainerMTGTeacherWideRaw_smoke", nnUNet_extTrainer=ext)
    assert (teacher.form.name, teacher.form.stem_channels, teacher.form.loss_kind) == ("stem-mixture-raw-loss", 8, "raw")
    assert teacher.lambda_align == 0.3 and teacher.num_epochs == 2 and teacher.num_iterations_per_epoch == 10
    with pytest.raises(UserInputError) as e:  # the student finds its own teacher by the declared name
        start_trainer(phantom, "nnUNetTrainerMTGStudentWideRaw_5epochs", nnUNet_extTrainer=ext)
    assert "-tr nnUNetTrainerMTGTeacherWideRaw_5epochs" in str(e.value)
