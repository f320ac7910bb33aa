"""FLOPs and saved-for-backward bytes of one training step of each trainer, as ratios to stock nnU-Net.

    python benchmarks/train_cost.py [--patch 64 64 48] [--trainers T ...] [--json PATH]

Counts, not timings: the same on any machine, so a CPU predicts what a GPU's step costs relative to stock.
Every trainer is built by nnU-Net (`get_trainer_from_args` + `initialize`) on the network nnU-Net plans for
BraTS 2021 (Dataset137, 32..320 features, 6 stages) at a reduced patch, and runs nnU-Net's own `train_step` on
the same stored batch in bfloat16 autocast (nnU-Net's mixed precision; on the CPU the autocast is ours).
- FLOPs: torch's FlopCounterMode over the whole step (forward, loss, backward; a student's teacher forward too).
- Saved bytes: every tensor autograd keeps for the backward pass (`torch.autograd.graph.saved_tensors_hooks`),
  each storage counted once: the activation memory that sets a GPU's peak for a large patch.
"""
from __future__ import annotations

import argparse
import os
import sys

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from workspace import make_workspace, write_brats_like_plans, write_json  # noqa: E402  (sets nnU-Net's variables first)
from lineup import SUFFIXES  # noqa: E402
from train_step import build, save_teachers, stored_batches  # noqa: E402

TRAINERS = ["nnUNetTrainer", "nnUNetTrainerModalityDropout", *[f"nnUNetTrainerMTGTeacher{f}" for f in SUFFIXES],
            "nnUNetTrainerKDStudent", "nnUNetTrainerProtoKDStudent", "nnUNetTrainerMTGStudentMixture",
            "nnUNetTrainerMTGStudentFirstBlock"]


def step_cost(trainer, batch: dict) -> tuple[int, int]:
    """(FLOPs, bytes saved for backward) of one train step."""
    import torch
    from torch.utils.flop_counter import FlopCounterMode

    saved: dict[int, int] = {}

    def pack(t: torch.Tensor):
        storage = t.untyped_storage()
        saved[storage.data_ptr()] = storage.nbytes()
        return t

    counter = FlopCounterMode(display=False)
    with counter, torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t), \
            torch.autocast("cpu", dtype=torch.bfloat16):
        trainer.train_step(batch)
    return counter.get_total_flops(), sum(saved.values())


def main(argv: list[str] | None = None) -> dict:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--patch", type=int, nargs=3, default=[64, 64, 48], help="patch (default 64 64 48: the BraTS "
                                                                             "network's strides need x, y / 32, z / 16)")
    p.add_argument("--trainers", nargs="+", default=TRAINERS)
    p.add_argument("--workspace", default=None, help="reuse this workspace folder (default: a new temp dir)")
    p.add_argument("--json", default=None, help="write {trainer: {flops, saved_bytes, ratios}} here")
    a = p.parse_args(argv)
    os.environ["nnUNet_compile"] = "f"
    ws = make_workspace(990, n_train=6, root=a.workspace)

    import torch

    device = torch.device("cpu")
    plans = write_brats_like_plans(ws["name"], a.patch)
    batch = stored_batches(ws["name"], plans, device, 1)[0]
    save_teachers(ws["name"], plans, a.trainers)
    result = {}
    for name in a.trainers:
        torch.manual_seed(0)
        np.random.seed(0)  # students draw their subsets: the same draw for every student
        flops, saved = step_cost(build(name, ws["name"], plans, device), batch)
        result[name] = {"flops": flops, "saved_bytes": saved}
    stock = result[a.trainers[0]]
    print(f"torch {torch.__version__}, plans {plans} (BraTS-2021 network, patch {'x'.join(map(str, a.patch))}, batch "
          f"{batch['data'].shape[0]}), bfloat16 autocast, one train step")
    print(f"{'trainer':40s} {'GFLOP':>9s} {'FLOP ratio':>10s} {'saved MiB':>10s} {'saved ratio':>11s}")
    for name, r in result.items():
        r["flop_ratio"], r["saved_ratio"] = r["flops"] / stock["flops"], r["saved_bytes"] / stock["saved_bytes"]
        print(f"{name:40s} {r['flops'] / 1e9:9.1f} {r['flop_ratio']:10.3f} {r['saved_bytes'] / 2**20:10.1f} "
              f"{r['saved_ratio']:11.3f}")
    return write_json(a.json, result)


if __name__ == "__main__":
    main()
