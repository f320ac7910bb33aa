"""A throwaway nnU-Net workspace for benchmarks: a small phantom, planned and preprocessed by stock nnU-Net.

Must be imported before nnunetv2: nnU-Net reads its folder variables when `nnunetv2.paths` is imported.
"""
from __future__ import annotations

import os
import subprocess
import sys
import tempfile

BIN = os.path.dirname(sys.executable)


# The 3d_fullres network nnU-Net plans for BraTS 2021 at 1 mm (Dataset137): the workload GPU figures should
# describe. Applied to the phantom's preprocessed data; nnU-Net's loader pads the small images to the patch.
BRATS_LIKE = {"configurations": {"3d_fullres": {
    "patch_size": [128, 160, 112], "batch_size": 2,
    "architecture": {"arch_kwargs": {
        "n_stages": 6, "features_per_stage": [32, 64, 128, 256, 320, 320],
        "kernel_sizes": [[3, 3, 3]] * 6,
        "strides": [[1, 1, 1], [2, 2, 2], [2, 2, 2], [2, 2, 2], [2, 2, 2], [2, 2, 1]],
        "n_conv_per_stage": [2] * 6, "n_blocks_per_stage": [1, 3, 4, 6, 6, 6], "n_conv_per_stage_decoder": [2] * 5}},
}}}


def write_brats_like_plans(dataset_name: str, patch_size: list[int] | None = None) -> str:
    """nnUNetPlans_bratslike: the phantom's plans with the network and patch of nnU-Net's BraTS 2021 plan; with
    `patch_size`, the same network at that patch (nnUNetPlans_bratslike_<x>x<y>x<z>)."""
    import copy
    import json

    from nnunetv2_mtg.plans_presets import apply_preset

    preset, name = BRATS_LIKE, "bratslike"
    if patch_size is not None:
        preset = copy.deepcopy(BRATS_LIKE)
        preset["configurations"]["3d_fullres"]["patch_size"] = list(patch_size)
        name += "_" + "x".join(map(str, patch_size))
    folder = os.path.join(os.environ["nnUNet_preprocessed"], dataset_name)
    with open(os.path.join(folder, "nnUNetPlans.json")) as f:
        plans = apply_preset(json.load(f), preset, name)
    with open(os.path.join(folder, plans["plans_name"] + ".json"), "w") as f:
        json.dump(plans, f, indent=2)
    return plans["plans_name"]


def write_json(path: str | None, result: dict) -> dict:
    """A benchmark's result as JSON where --json asks for it; returns the result."""
    if path:
        import json

        with open(path, "w") as f:
            json.dump(result, f, indent=2)
    return result


def make_workspace(dataset_id: int, n_train: int, n_test: int = 0, root: str | None = None) -> dict:
    """Point nnU-Net's variables at `root` (a temp dir by default) and make the phantom with cpu_tiny plans."""
    root = root or tempfile.mkdtemp(prefix="mtg_bench_")
    for name in ("nnUNet_raw", "nnUNet_preprocessed", "nnUNet_results"):
        os.environ[name] = os.path.join(root, name)
        os.makedirs(os.environ[name], exist_ok=True)
    os.environ.setdefault("nnUNet_compile", "f")
    from nnunetv2_mtg.paths import trainers_folder

    os.environ["nnUNet_extTrainer"] = trainers_folder()
    name = f"Dataset{dataset_id:03d}_BraTSPhantom"
    if not os.path.isdir(os.path.join(os.environ["nnUNet_preprocessed"], name)):
        steps = [["nnUNetv2_mtg_phantom", "-d", str(dataset_id), "-n", str(n_train), "--test", str(n_test)],
                 ["nnUNetv2_plan_and_preprocess", "-d", str(dataset_id), "-c", "3d_fullres", "-np", "4"],
                 ["nnUNetv2_mtg_plans", "-d", str(dataset_id), "--preset", "cpu_tiny"]]
        for step in steps:
            subprocess.run([os.path.join(BIN, step[0])] + step[1:], check=True, stdout=subprocess.DEVNULL)
    return {"root": root, "id": dataset_id, "name": name,
            "raw": os.path.join(os.environ["nnUNet_raw"], name)}
