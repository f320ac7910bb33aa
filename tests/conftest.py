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
import torch

from nnunetv2_mtg.paths import trainers_folder

TESTS = os.path.dirname(os.path.abspath(__file__))
BIN = os.path.dirname(sys.executable)
PHANTOM_ID = 950  # region-based, like Dataset137
LABEL_ID = 951  # same images, label-based (no regions_class_order), like Dataset226
N_TRAIN, N_TEST = 6, 2
SPACING = 4  # mm: 39x49x41-voxel brains, two sliding windows of the 48^3 cpu_tiny patch per case (3 mm: eight)


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
    """Dataset950_BraTSPhantom at SPACING: generated, verified, planned, preprocessed, cpu_tiny plans applied."""
    run_cli(["nnUNetv2_mtg_phantom", "-d", str(PHANTOM_ID), "-n", str(N_TRAIN), "--test", str(N_TEST),
             "--seed", "1", "--spacing", str(SPACING)], nnunet_env)
    _preprocess(nnunet_env, PHANTOM_ID)
    return {"id": PHANTOM_ID, "name": f"Dataset{PHANTOM_ID}_BraTSPhantom",
            "raw": os.path.join(nnunet_env["nnUNet_raw"], f"Dataset{PHANTOM_ID}_BraTSPhantom")}


@pytest.fixture(scope="session")
def label_dataset(nnunet_env, phantom) -> dict:
    """The phantom's images as a label-based dataset (no regions), like nnU-Net's Dataset226. Its preprocessed data
    are the phantom's (the same images and label maps; only dataset.json and the plans' dataset name differ), so it
    costs no second preprocessing."""
    name = f"Dataset{LABEL_ID}_BraTSLabels"
    target = os.path.join(nnunet_env["nnUNet_raw"], name)
    shutil.copytree(phantom["raw"], target)
    pre = os.path.join(nnunet_env["nnUNet_preprocessed"], name)
    shutil.copytree(os.path.join(nnunet_env["nnUNet_preprocessed"], phantom["name"]), pre)
    for folder in (target, pre):
        with open(os.path.join(folder, "dataset.json")) as f:
            dj = json.load(f)
        dj["channel_names"] = {"0": "T1", "1": "T1C", "2": "T2W", "3": "T2F"}
        dj["labels"] = {"background": 0, "edema": 1, "necrosis": 2, "enhancing": 3}
        del dj["regions_class_order"]
        with open(os.path.join(folder, "dataset.json"), "w") as f:
            json.dump(dj, f)
    for plans_file in ("nnUNetPlans.json", "nnUNetPlans_cpu_tiny.json"):
        with open(os.path.join(pre, plans_file)) as f:
            plans = json.load(f)
        plans["dataset_name"] = name
        with open(os.path.join(pre, plans_file), "w") as f:
            json.dump(plans, f)
    return {"id": LABEL_ID, "name": name, "raw": target}


@pytest.fixture
def in_process(nnunet_env, monkeypatch):
    """The session's nnU-Net environment for code called in this process (nnU-Net and our tools read the folders from
    the environment when they use them): a refusal is then checked without a process start (~10 s) each."""
    for k, v in nnunet_env.items():
        monkeypatch.setenv(k, v)
    return monkeypatch


@pytest.fixture
def start_trainer(in_process):
    """What stock nnUNetv2_train does before it trains, in this process: nnU-Net's get_trainer_from_args. A refused
    start raises the trainer's UserInputError here, before nnU-Net creates any folder; the CLI tests show the same
    refusal as stock nnUNetv2_train prints it."""
    import torch

    def start(dataset: dict, trainer: str, fold: int = 0, configuration: str = "3d_fullres",
              plans: str = "nnUNetPlans_cpu_tiny", **env: str):
        from nnunetv2.run.run_training import get_trainer_from_args

        with in_process.context() as m:
            for k, v in env.items():
                m.setenv(k, v)
            return get_trainer_from_args(str(dataset["id"]), configuration, fold, trainer, plans,
                                         device=torch.device("cpu"))

    return start


PLANS_OF = {"3d_fullres": "nnUNetPlans_cpu_tiny", "2d": "nnUNetPlans_cpu_2d"}  # the suite's plans per configuration


def fold_folder(env: dict, dataset: dict, trainer: str, configuration: str = "3d_fullres") -> str:
    return os.path.join(env["nnUNet_results"], dataset["name"],
                        f"{trainer}__{PLANS_OF[configuration]}__{configuration}", "fold_0")


def train_args(dataset: dict, trainer: str, *extra: str, configuration: str = "3d_fullres") -> list[str]:
    """Stock nnUNetv2_train's command line: fold 0, the suite's CPU plans of the configuration, on the CPU."""
    return ["nnUNetv2_train", str(dataset["id"]), configuration, "0", "-tr", trainer, "-p", PLANS_OF[configuration],
            "-device", "cpu", *extra]


def train(env: dict, dataset: dict, trainer: str, *extra: str, check: bool = True,
          configuration: str = "3d_fullres") -> subprocess.CompletedProcess:
    """Stock nnUNetv2_train (train_args) as a finished run; on unexpected failure its output is shown."""
    return run_cli(train_args(dataset, trainer, *extra, configuration=configuration), env, check=check)


def train_interrupted(env: dict, dataset: dict, trainer: str, timeout: float = 900) -> list[str]:
    """Stock nnUNetv2_train (fold 0, cpu_tiny) killed with its workers as soon as its second epoch starts, when
    nnU-Net itself has written checkpoint_latest.pth of the first: a real interruption, to resume with --c. The trainer
    must checkpoint every epoch and train at least two. Returns the training logs there are then."""
    import re
    import signal
    import time

    fold = fold_folder(env, dataset, trainer)
    args = train_args(dataset, trainer)
    proc = subprocess.Popen([os.path.join(BIN, args[0])] + args[1:], env=env, stdout=subprocess.DEVNULL,
                            stderr=subprocess.PIPE, text=True, start_new_session=True)
    deadline = time.time() + timeout
    try:
        while not any(re.search(r": Epoch 1\b", open(os.path.join(fold, f)).read())
                      for f in (os.listdir(fold) if os.path.isdir(fold) else []) if f.startswith("training_log")):
            if proc.poll() is not None:
                raise AssertionError(f"{trainer} ended ({proc.returncode}) before its second epoch:\n"
                                     f"{proc.stderr.read()[-4000:]}")
            if time.time() > deadline:
                raise AssertionError(f"{trainer} did not reach its second epoch in {timeout} s")
            time.sleep(0.05)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
    assert os.path.isfile(os.path.join(fold, "checkpoint_latest.pth"))
    assert not os.path.exists(os.path.join(fold, "checkpoint_final.pth")), "the run finished before it was stopped"
    return sorted(f for f in os.listdir(fold) if f.startswith("training_log"))


def epochs_in_new_logs(fold: str, old_logs: list[str]) -> list[int]:
    """The epochs that training logs written since `old_logs` report: what a resumed run really trained."""
    import re

    new = [f for f in os.listdir(fold) if f.startswith("training_log") and f not in old_logs]
    return [int(e) for f in new for e in re.findall(r": Epoch (\d+) ", open(os.path.join(fold, f)).read())]


def checkpoint(fold: str, name: str = "checkpoint_final.pth") -> dict:
    """A fold folder's nnU-Net checkpoint (weights, init_args, logging), loaded on the CPU."""
    return torch.load(os.path.join(fold, name), map_location="cpu", weights_only=False)


class TrainedModels:
    """Every model the suite trains, trained once per (trainer, dataset) for the whole session: a test asks for a
    model by name and gets its fold folder; the first to ask trains it (stock nnUNetv2_train, fold 0, cpu_tiny). A
    test that resumes a model (--c) leaves it trained to the same epoch, so later tests may share it."""

    def __init__(self, env: dict):
        self.env = env
        self.folders: dict[tuple, str] = {}

    def fold(self, dataset: dict, trainer: str, configuration: str = "3d_fullres", **env_overrides: str) -> str:
        key = (trainer, dataset["id"], configuration, tuple(sorted(env_overrides.items())))
        if key not in self.folders:
            train(dict(self.env, **env_overrides), dataset, trainer, configuration=configuration)
            self.folders[key] = fold_folder(self.env, dataset, trainer, configuration)
        return self.folders[key]


@pytest.fixture(scope="session")
def models(nnunet_env) -> TrainedModels:
    return TrainedModels(nnunet_env)


@pytest.fixture(scope="session")
def mtg_teacher(models, phantom) -> str:
    """nnUNetTrainerMTGTeacherBottleneck_smoke trained on the phantom; returns its fold folder."""
    return models.fold(phantom, "nnUNetTrainerMTGTeacherBottleneck_smoke")


@pytest.fixture(scope="session")
def default_teacher(models, phantom) -> str:
    """nnUNetTrainerMTGTeacher_12iters (the default form, the one users get) trained on the phantom; its name."""
    models.fold(phantom, "nnUNetTrainerMTGTeacher_12iters")
    return "nnUNetTrainerMTGTeacher_12iters"


@pytest.fixture(scope="session")
def ignores_flair(nnunet_env, phantom, mtg_teacher) -> str:
    """The smoke teacher with its first convolution's FLAIR weights zeroed, as a results folder of its own
    (`nnUNetTrainerIgnoresFLAIR`): a model whose output provably does not depend on FLAIR."""
    name = "nnUNetTrainerIgnoresFLAIR"
    target = os.path.dirname(fold_folder(nnunet_env, phantom, name))
    shutil.copytree(os.path.dirname(mtg_teacher), target, ignore=shutil.ignore_patterns("validation"))
    fold = os.path.join(target, "fold_0")
    ckpt = checkpoint(fold)
    flair = 3
    zeroed = 0
    for key, value in ckpt["network_weights"].items():
        if "stages.0.0.convs.0." in key and value.ndim == 5 and value.shape[1] == 4:
            value[:, flair] = 0
            zeroed += 1
    assert zeroed >= 1
    torch.save(ckpt, os.path.join(fold, "checkpoint_final.pth"))
    return name


@pytest.fixture(scope="session")
def stock_tiny(models, phantom) -> str:
    """nnUNetTrainerTestTiny (stock nnU-Net network and loss, smoke schedule) trained on the phantom; its name."""
    models.fold(phantom, "nnUNetTrainerTestTiny")
    return "nnUNetTrainerTestTiny"


@pytest.fixture(scope="session")
def dropout_teacher(models, phantom) -> str:
    """nnUNetTrainerModalityDropout_12iters trained on the phantom (the teacher of the KD and ProtoKD `_12iters`
    students, found by the schedule suffix); its fold folder."""
    return models.fold(phantom, "nnUNetTrainerModalityDropout_12iters")


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


def predict(env: dict, dataset: dict, trainer: str, images: str, out: str, *extra: str,
            configuration: str = "3d_fullres") -> subprocess.CompletedProcess:
    """Stock nnUNetv2_predict, fold 0, the suite's CPU plans of the configuration, on the CPU, without test-time
    mirroring, on nnU-Net's sequential path (-npp 0 -nps 0: its worker processes would take 13 s of a 17 s two-case
    prediction to start)."""
    return run_cli(["nnUNetv2_predict", "-i", images, "-o", out, "-d", str(dataset["id"]), "-c", configuration,
                    "-tr", trainer, "-p", PLANS_OF[configuration], "-f", "0", "-device", "cpu", "--disable_tta",
                    "-npp", "0", "-nps", "0", *extra], env)


def check_prediction(out: str, images: str, labels: str) -> None:
    """Each case predicted into `out` (with --save_probabilities) is the region-based network's own output: the
    reference's shape and labels, labelled exactly where a region's saved probability exceeds 0.5, and probabilities
    that are finite and vary over the brain (a network that gives NaN or one constant fails; so does a prediction
    that is not written from its probabilities)."""
    import numpy as np
    import SimpleITK as sitk

    cases = sorted(f[: -len(".nii.gz")] for f in os.listdir(out) if f.endswith(".nii.gz"))
    assert cases
    for case in cases:
        pred = sitk.GetArrayFromImage(sitk.ReadImage(os.path.join(out, case + ".nii.gz")))
        ref = sitk.GetArrayFromImage(sitk.ReadImage(os.path.join(labels, case + ".nii.gz")))
        assert pred.shape == ref.shape and set(np.unique(pred)) <= {0, 1, 2, 3}
        probs = np.load(os.path.join(out, case + ".npz"))["probabilities"]
        assert probs.shape[1:] == pred.shape and np.isfinite(probs).all()
        assert np.array_equal(pred > 0, (probs > 0.5).any(0))
        brain = sitk.GetArrayFromImage(sitk.ReadImage(os.path.join(images, case + "_0000.nii.gz"))) != 0
        assert probs[:, brain].std(axis=1).min() > 1e-4, f"{case}: the probabilities are constant over the brain"
