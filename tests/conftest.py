"""Shared fixtures: one small phantom, preprocessed once by stock nnU-Net, for the whole session.

Everything runs the real nnU-Net machinery through its CLIs in subprocesses, with the nnU-Net
folders in a temporary directory.
"""
from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys

import pytest

from nnunetv2_mtg.paths import trainers_folder

TESTS = os.path.dirname(os.path.abspath(__file__))
BIN = os.path.dirname(sys.executable)
PHANTOM_ID = 950  # region-based, like Dataset137
LABEL_ID = 951  # same images, label-based (no regions_class_order), like Dataset226
N_TRAIN, N_TEST = 6, 2


def run_cli(args: list[str], env: dict, check: bool = True, timeout: int = 900) -> subprocess.CompletedProcess:
    """Run one of the installed console scripts; on unexpected failure show its output."""
    exe = args[0] if os.path.isabs(args[0]) else os.path.join(BIN, args[0])
    proc = subprocess.run([exe] + args[1:], env=env, capture_output=True, text=True, timeout=timeout)
    if check and proc.returncode != 0:
        raise AssertionError(f"{' '.join(args)} failed ({proc.returncode}):\n{proc.stdout[-4000:]}\n{proc.stderr[-6000:]}")
    return proc


@pytest.fixture(scope="session")
def nnunet_env(tmp_path_factory) -> dict:
    """Environment with nnU-Net's folders in a temp dir and our trainers on nnUNet_extTrainer."""
    root = tmp_path_factory.mktemp("nnunet")
    env = dict(os.environ)
    for name in ("nnUNet_raw", "nnUNet_preprocessed", "nnUNet_results"):
        os.makedirs(root / name)
        env[name] = str(root / name)
    env["nnUNet_extTrainer"] = os.pathsep.join([trainers_folder(), os.path.join(TESTS, "ext_trainers")])
    env["nnUNet_compile"] = "f"
    env["nnUNet_n_proc_DA"] = "2"
    env["nnUNet_def_n_proc"] = "2"
    env["PATH"] = BIN + os.pathsep + env.get("PATH", "")
    return env


def _preprocess(env: dict, dataset_id: int) -> None:
    run_cli(["nnUNetv2_plan_and_preprocess", "-d", str(dataset_id), "-c", "3d_fullres", "-np", "2",
             "--verify_dataset_integrity"], env)
    run_cli(["nnUNetv2_mtg_plans", "-d", str(dataset_id), "--preset", "cpu_tiny"], env)


@pytest.fixture(scope="session")
def phantom(nnunet_env) -> dict:
    """Dataset950_BraTSPhantom: generated, verified, planned, preprocessed, cpu_tiny plans applied."""
    run_cli(["nnUNetv2_mtg_phantom", "-d", str(PHANTOM_ID), "-n", str(N_TRAIN), "--test", str(N_TEST),
             "--seed", "1"], nnunet_env)
    _preprocess(nnunet_env, PHANTOM_ID)
    return {"id": PHANTOM_ID, "name": f"Dataset{PHANTOM_ID}_BraTSPhantom",
            "raw": os.path.join(nnunet_env["nnUNet_raw"], f"Dataset{PHANTOM_ID}_BraTSPhantom")}


@pytest.fixture(scope="session")
def label_dataset(nnunet_env, phantom) -> dict:
    """The phantom's images as a label-based dataset (no regions), like nnU-Net's Dataset226."""
    name = f"Dataset{LABEL_ID}_BraTSLabels"
    target = os.path.join(nnunet_env["nnUNet_raw"], name)
    shutil.copytree(phantom["raw"], target)
    with open(os.path.join(target, "dataset.json")) as f:
        dj = json.load(f)
    dj["channel_names"] = {"0": "T1", "1": "T1C", "2": "T2W", "3": "T2F"}
    dj["labels"] = {"background": 0, "edema": 1, "necrosis": 2, "enhancing": 3}
    del dj["regions_class_order"]
    with open(os.path.join(target, "dataset.json"), "w") as f:
        json.dump(dj, f)
    _preprocess(nnunet_env, LABEL_ID)
    return {"id": LABEL_ID, "name": name, "raw": target}


def fold_folder(env: dict, dataset: dict, trainer: str, plans: str = "nnUNetPlans_cpu_tiny") -> str:
    return os.path.join(env["nnUNet_results"], dataset["name"], f"{trainer}__{plans}__3d_fullres", "fold_0")


def train(env: dict, dataset: dict, trainer: str, *extra: str, check: bool = True) -> subprocess.CompletedProcess:
    """Stock nnUNetv2_train, fold 0, cpu_tiny plans, on the CPU."""
    return run_cli(["nnUNetv2_train", str(dataset["id"]), "3d_fullres", "0", "-tr", trainer,
                    "-p", "nnUNetPlans_cpu_tiny", "-device", "cpu", *extra], env, check=check)


def interrupt_after_first_epoch(fold: str) -> list[str]:
    """Make a finished 2-epoch run look interrupted after its first epoch: checkpoint_latest.pth at epoch 1 (the
    logs cut to that epoch), no final or best checkpoint (nnU-Net's --c would otherwise load those, and a run
    whose best checkpoint is its last has nothing left to train). Returns the training logs there are now."""
    import torch

    ckpt = torch.load(os.path.join(fold, "checkpoint_final.pth"), map_location="cpu", weights_only=False)
    ckpt["current_epoch"] = 1
    ckpt["logging"] = {k: v[:1] for k, v in ckpt["logging"].items()}
    torch.save(ckpt, os.path.join(fold, "checkpoint_latest.pth"))
    for name in ("checkpoint_final.pth", "checkpoint_best.pth"):
        os.remove(os.path.join(fold, name))
    return sorted(f for f in os.listdir(fold) if f.startswith("training_log"))


def epochs_in_new_logs(fold: str, old_logs: list[str]) -> list[int]:
    """The epochs that training logs written since `old_logs` report: what a resumed run really trained."""
    import re

    new = [f for f in os.listdir(fold) if f.startswith("training_log") and f not in old_logs]
    return [int(e) for f in new for e in re.findall(r": Epoch (\d+) ", open(os.path.join(fold, f)).read())]


@pytest.fixture(scope="session")
def mtg_teacher(nnunet_env, phantom) -> str:
    """nnUNetTrainerMTGTeacherBottleneck_smoke trained on the phantom; returns its fold folder."""
    train(nnunet_env, phantom, "nnUNetTrainerMTGTeacherBottleneck_smoke")
    return fold_folder(nnunet_env, phantom, "nnUNetTrainerMTGTeacherBottleneck_smoke")


@pytest.fixture(scope="session")
def default_teacher(nnunet_env, phantom) -> str:
    """nnUNetTrainerMTGTeacher_smoke (the default form, the one users get) trained on the phantom; its name."""
    train(nnunet_env, phantom, "nnUNetTrainerMTGTeacher_smoke")
    return "nnUNetTrainerMTGTeacher_smoke"


@pytest.fixture(scope="session")
def ignores_flair(nnunet_env, phantom, mtg_teacher) -> str:
    """The smoke teacher with its first convolution's FLAIR weights zeroed, as a results folder of its own
    (`nnUNetTrainerIgnoresFLAIR`): a model whose output provably does not depend on FLAIR."""
    import torch

    name = "nnUNetTrainerIgnoresFLAIR"
    target = os.path.dirname(fold_folder(nnunet_env, phantom, name))
    shutil.copytree(os.path.dirname(mtg_teacher), target, ignore=shutil.ignore_patterns("validation"))
    path = os.path.join(target, "fold_0", "checkpoint_final.pth")
    ckpt = torch.load(path, map_location="cpu", weights_only=False)
    flair = 3
    zeroed = 0
    for key, value in ckpt["network_weights"].items():
        if "stages.0.0.convs.0." in key and value.ndim == 5 and value.shape[1] == 4:
            value[:, flair] = 0
            zeroed += 1
    assert zeroed >= 1
    torch.save(ckpt, path)
    return name


@pytest.fixture(scope="session")
def stock_tiny(nnunet_env, phantom) -> str:
    """nnUNetTrainerTestTiny (stock nnU-Net network and loss, smoke schedule) trained on the phantom; its name."""
    train(nnunet_env, phantom, "nnUNetTrainerTestTiny")
    return "nnUNetTrainerTestTiny"


@pytest.fixture(scope="session")
def dropout_teacher(nnunet_env, phantom) -> str:
    """nnUNetTrainerModalityDropout_smoke trained on the phantom (the KD and ProtoKD students' teacher)."""
    train(nnunet_env, phantom, "nnUNetTrainerModalityDropout_smoke")
    return fold_folder(nnunet_env, phantom, "nnUNetTrainerModalityDropout_smoke")


@pytest.fixture(scope="session")
def one_case(phantom, tmp_path_factory) -> str:
    """A folder with the first test case only, for quick predictions."""
    folder = tmp_path_factory.mktemp("one_case")
    images = os.path.join(phantom["raw"], "imagesTs")
    first = sorted(os.listdir(images))[0].rsplit("_", 1)[0]
    for f in sorted(os.listdir(images)):
        if f.startswith(first + "_"):
            shutil.copy(os.path.join(images, f), folder / f)
    return str(folder)


def predict(env: dict, dataset: dict, trainer: str, images: str, out: str, *extra: str) -> subprocess.CompletedProcess:
    """Stock nnUNetv2_predict, fold 0, cpu_tiny plans, on the CPU, without test-time mirroring."""
    return run_cli(["nnUNetv2_predict", "-i", images, "-o", out, "-d", str(dataset["id"]), "-c", "3d_fullres",
                    "-tr", trainer, "-p", "nnUNetPlans_cpu_tiny", "-f", "0", "-device", "cpu", "--disable_tta",
                    "-npp", "1", "-nps", "1", *extra], env)
