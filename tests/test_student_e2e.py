"""Students through stock nnUNetv2_train: teacher lookup, every start error, checkpoint content, --c, predict."""
import os
import shutil

import numpy as np
import pytest
import torch

from conftest import checkpoint, fold_folder, predict, train
from nnunetv2_mtg.env import UserInputError

STUDENT = "nnUNetTrainerMTGStudentBottleneck_smoke"


def _results_snapshot(env):
    out = {}
    for root, _, files in os.walk(env["nnUNet_results"]):
        for f in files:
            p = os.path.join(root, f)
            out[p] = os.path.getmtime(p)
    return out


def test_start_errors_leave_results_untouched(nnunet_env, phantom, mtg_teacher, start_trainer, tmp_path):
    before = _results_snapshot(nnunet_env)
    # the KD student's paired teacher (nnUNetTrainerModalityDropout_5epochs) was never trained: stock nnUNetv2_train
    # prints the command that trains it
    p = train(nnunet_env, phantom, "nnUNetTrainerKDStudent_5epochs", check=False)
    assert p.returncode != 0
    assert (f"nnUNetv2_train {phantom['id']} 3d_fullres 0 -tr nnUNetTrainerModalityDropout_5epochs "
            f"-p nnUNetPlans_cpu_tiny") in p.stderr

    garbage = tmp_path / "garbage.pth"
    garbage.write_bytes(b"not a checkpoint")
    not_nnunet = tmp_path / "weights.pth"
    torch.save({"state_dict": {}}, not_nnunet)
    for value, message in ((str(tmp_path / "nothing"), "does not exist"),
                           (str(garbage), "cannot be read by torch.load"),
                           (str(not_nnunet), "is not an nnU-Net training checkpoint")):
        with pytest.raises(UserInputError, match=message):
            start_trainer(phantom, STUDENT, nnUNet_MTG_TEACHER=value)

    # an incompatible teacher: same images, but label-based (the MTG teacher of Dataset951 would do; a
    # checkpoint whose dataset.json says so is the same to the check)
    ckpt = checkpoint(mtg_teacher)
    ckpt["init_args"]["dataset_json"] = dict(ckpt["init_args"]["dataset_json"], regions_class_order=None,
                                             labels={"background": 0, "edema": 1, "necrosis": 2, "enhancing": 3})
    torch.save(ckpt, tmp_path / "labels.pth")
    with pytest.raises(UserInputError, match="labels/regions differ"):
        start_trainer(phantom, STUDENT, nnUNet_MTG_TEACHER=str(tmp_path / "labels.pth"))

    # a teacher without aligned latents for the MTG student
    ckpt = checkpoint(mtg_teacher)
    ckpt["trainer_name"] = "nnUNetTrainerModalityDropout_smoke"
    ckpt["network_weights"] = {k: v for k, v in ckpt["network_weights"].items() if not k.startswith("align.")}
    torch.save(ckpt, tmp_path / "plain.pth")
    with pytest.raises(UserInputError) as e:
        start_trainer(phantom, STUDENT, nnUNet_MTG_TEACHER=str(tmp_path / "plain.pth"))
    assert "has the alignment form 'none', the student 'bottleneck'" in str(e.value)
    assert f"nnUNetv2_train {phantom['id']} 3d_fullres 0 -tr nnUNetTrainerMTGTeacherBottleneck_smoke -p " \
           f"nnUNetPlans_cpu_tiny" in str(e.value)

    assert _results_snapshot(nnunet_env) == before  # nothing written, nothing removed
    assert not os.path.exists(fold_folder(nnunet_env, phantom, STUDENT))


def test_mtg_student_trains_without_teacher_in_checkpoint_and_predicts(nnunet_env, models, phantom, mtg_teacher,
                                                                      tmp_path):
    fold = models.fold(phantom, STUDENT)
    student = checkpoint(fold)
    teacher = checkpoint(mtg_teacher)
    # the same network as the teacher's and nothing else: no teacher weights ride along
    assert set(student["network_weights"]) == set(teacher["network_weights"])
    n_params = sum(v.numel() for v in student["network_weights"].values())
    assert n_params == sum(v.numel() for v in teacher["network_weights"].values())
    assert os.path.getsize(os.path.join(fold, "checkpoint_final.pth")) < 1.1 * os.path.getsize(
        os.path.join(mtg_teacher, "checkpoint_final.pth"))
    for term in ("kd", "kl_latent", "kl_align"):
        values = student["logging"][f"train_{term}"]
        assert len(values) == 2 and all(np.isfinite(values)) and all(v >= 0 for v in values), term
    assert student["logging"]["train_kd"][0] > 0
    log = "".join(open(os.path.join(fold, f)).read() for f in os.listdir(fold) if f.startswith("training_log"))
    assert "teacher: " + os.path.join(mtg_teacher, "checkpoint_final.pth") in log

    # stock nnUNetv2_predict with the student while the teacher is gone
    teacher_dir = os.path.dirname(mtg_teacher)
    shutil.move(teacher_dir, tmp_path / "teacher_away")
    try:
        out = tmp_path / "pred"
        predict(nnunet_env, phantom, STUDENT, os.path.join(phantom["raw"], "imagesTs"), str(out))
        assert len([f for f in os.listdir(out) if f.endswith(".nii.gz")]) == 2
    finally:
        shutil.move(tmp_path / "teacher_away", teacher_dir)


def test_kd_student_with_dropout_teacher(models, phantom, dropout_teacher):
    fold = models.fold(phantom, "nnUNetTrainerKDStudent_12iters")
    ckpt = checkpoint(fold)
    assert not any(k.startswith(("align.", "stem.")) for k in ckpt["network_weights"])  # stock network
    assert len(ckpt["logging"]["train_kd"]) == 1 and ckpt["logging"]["train_kd"][0] > 0
    log = "".join(open(os.path.join(fold, f)).read() for f in os.listdir(fold) if f.startswith("training_log"))
    assert "teacher: " + os.path.join(dropout_teacher, "checkpoint_final.pth") in log  # found by its schedule
    assert "train_kl_align" not in ckpt["logging"]


def test_student_masks_each_sample_while_its_teacher_sees_the_patch_unmasked(nnunet_env, phantom, default_teacher,
                                                                             start_trainer, tmp_path):
    """Spies on what the default MTG student's network and its frozen teacher receive in real train steps."""
    teacher = fold_folder(nnunet_env, phantom, default_teacher)
    trainer = start_trainer(phantom, "nnUNetTrainerMTGStudent_smoke", nnUNet_results=str(tmp_path),
                            nnUNet_MTG_TEACHER=teacher)
    trainer.initialize()
    seen = {}
    trainer.teacher_network.register_forward_pre_hook(lambda m, args: seen.__setitem__("teacher", args[0].clone()))
    trainer.network.register_forward_pre_hook(lambda m, args: seen.__setitem__("student", args[0].clone()))
    torch.manual_seed(0)
    np.random.seed(0)
    patch = trainer.configuration_manager.patch_size
    shapes = [[int(s * f) for s, f in zip(patch, scale)] for scale in np.cumprod(
        np.vstack(trainer.configuration_manager.pool_op_kernel_sizes), axis=0)[:-1] ** -1.0]
    masked_samples = 0
    for _ in range(4):
        data = torch.randn(2, 4, *patch) + 3  # no voxel is 0 by chance
        target = [torch.zeros(2, 3, *s) for s in shapes]
        trainer.train_step({"data": data, "target": target})
        assert torch.equal(seen["teacher"], data)  # the teacher: the whole patch, every modality
        student = seen["student"]
        for b in range(2):
            kept = student[b].flatten(1).ne(0).any(1)
            assert kept.any()  # never all modalities missing
            assert torch.equal(student[b][kept], data[b][kept]) and not student[b][~kept].any()
            masked_samples += int(not kept.all())
    assert masked_samples >= 3  # uniform over the 15 subsets: 14 of 15 samples miss something
