"""Wall time of nnUNetv2_mtg_predict against stock nnUNetv2_predict on the same cases, model and settings.

    python benchmarks/predict.py [--device cpu|cuda] [--cases N] [--rounds 3] [--workspace DIR]

Three commands, run in interleaved rounds on the phantom's test cases with nnUNetTrainerMTGTeacher_smoke (trained
here first if the workspace has none): stock nnUNetv2_predict with every file; nnUNetv2_mtg_predict with every file;
nnUNetv2_mtg_predict with the T1ce files removed. Prints each one's median wall time and its ratio to stock, with
the range over the rounds (goals: all files <= 1.05x stock; one modality missing no slower than all present).
"""
from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from workspace import BIN, make_workspace  # noqa: E402  (sets nnU-Net's variables before nnunetv2 is imported)

TRAINER = "nnUNetTrainerMTGTeacher_smoke"
PLANS = "nnUNetPlans_cpu_tiny"


def _timed(args: list[str]) -> float:
    t0 = time.perf_counter()
    subprocess.run([os.path.join(BIN, args[0])] + args[1:], check=True, stdout=subprocess.DEVNULL,
                   stderr=subprocess.DEVNULL)
    return time.perf_counter() - t0


def main(argv: list[str] | None = None) -> dict:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--device", choices=["cpu", "cuda"], default="cpu")
    p.add_argument("--cases", type=int, default=8, help="test cases of the phantom")
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--workspace", default=None, help="reuse this workspace folder (default: a new temp dir)")
    a = p.parse_args(argv)
    ws = make_workspace(992, n_train=6, n_test=a.cases, root=a.workspace)
    fold = os.path.join(os.environ["nnUNet_results"], ws["name"], f"{TRAINER}__{PLANS}__3d_fullres", "fold_0")
    if not os.path.isfile(os.path.join(fold, "checkpoint_final.pth")):
        _timed(["nnUNetv2_train", str(ws["id"]), "3d_fullres", "0", "-tr", TRAINER, "-p", PLANS, "-device", a.device])
    images = os.path.join(ws["raw"], "imagesTs")
    scratch = tempfile.mkdtemp(prefix="mtg_predict_bench_")
    missing = os.path.join(scratch, "no_t1ce")
    shutil.copytree(images, missing, ignore=shutil.ignore_patterns("*_0001.nii.gz"))
    common = ["-d", str(ws["id"]), "-c", "3d_fullres", "-p", PLANS, "-tr", TRAINER, "-f", "0", "-device", a.device,
              "-npp", "2", "-nps", "2"] + (["--disable_tta"] if a.device == "cpu" else [])
    commands = {"nnUNetv2_predict, all files": ["nnUNetv2_predict", "-i", images],
                "nnUNetv2_mtg_predict, all files": ["nnUNetv2_mtg_predict", "-i", images],
                "nnUNetv2_mtg_predict, T1ce missing": ["nnUNetv2_mtg_predict", "-i", missing]}
    times = {k: [] for k in commands}
    for r in range(a.rounds):
        for k, cmd in commands.items():
            out = os.path.join(scratch, f"out_{r}_{len(times[k])}_{cmd[0]}")
            times[k].append(_timed(cmd + ["-o", out] + common))
            shutil.rmtree(out)
    shutil.rmtree(scratch)
    stock = statistics.median(times["nnUNetv2_predict, all files"])
    print(f"device {a.device}, {a.cases} cases, {a.rounds} rounds (median wall time per command, and its range)")
    result = {}
    for k, v in times.items():
        result[k] = {"median_s": statistics.median(v), "ratio": statistics.median(v) / stock,
                     "min_ratio": min(v) / stock, "max_ratio": max(v) / stock}
        print(f"{k:36s} {statistics.median(v):7.1f} s  ratio {result[k]['ratio']:.3f} "
              f"({result[k]['min_ratio']:.3f}-{result[k]['max_ratio']:.3f})")
    return result


if __name__ == "__main__":
    main()
