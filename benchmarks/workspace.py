"""A throwaway nnU-Net workspace for benchmarks: a small phantom, planned and preprocessed by stock nnU-Net.

Must be imported before nnunetv2: nnU-Net reads its folder variables when `nnunetv2.paths` is imported.
"""
from __future__ import annotations

import os
import subprocess
import sys
import tempfile

BIN = os.path.dirname(sys.executable)


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
