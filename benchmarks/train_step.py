"""Train-step time and peak memory of our trainers relative to stock nnU-Net, on the same plans and batches.

    python benchmarks/train_step.py [--device cpu|cuda] [-p PLANS] [-d ID] [--steps N] [--json PATH]

Every trainer is built by nnU-Net itself (`get_trainer_from_args` + `initialize`) on a phantom workspace
and fed the same stored batches from stock nnU-Net's data loader (the masking transform runs in the
data-loader workers, outside the timed step). Steps are interleaved across trainers after warm-up; the
median is reported. Peak memory: CUDA's max_memory_allocated around the steps; on CPU the rise of the
peak RSS of a fresh child process while it builds the trainer and runs the steps.
"""
from __future__ import annotations

import argparse
import multiprocessing
import os
import statistics
import sys
import time

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from workspace import make_workspace, write_brats_like_plans, write_json  # noqa: E402  (sets nnU-Net's variables before nnunetv2 is imported)

from lineup import DROPOUT, KD, PROTOKD, STOCK, STUDENT_PREFIX, SUFFIXES, TEACHER_PREFIX, teacher_of  # noqa: E402

TRAINERS = [STOCK, DROPOUT, *[TEACHER_PREFIX + f for f in SUFFIXES if f], KD, PROTOKD,
            *[STUDENT_PREFIX + f for f in SUFFIXES if f]]


def save_teachers(dataset: str, plans: str, trainers: list[str]) -> None:
    """Untrained checkpoints of the students' teachers where the students look for them (their weights do not
    change the cost)."""
    import torch

    for name in dict.fromkeys(t for s in trainers if (t := teacher_of(s))):
        trainer = build(name, dataset, plans, torch.device("cpu"))
        trainer.save_checkpoint(os.path.join(trainer.output_folder, "checkpoint_final.pth"))


def build(name: str, dataset: str, plans: str, device):
    from nnunetv2.run.run_training import get_trainer_from_args

    trainer = get_trainer_from_args(dataset, "3d_fullres", 0, name, plans, device=device)
    trainer.initialize()
    trainer.network.train()
    return trainer


def stored_batches(dataset: str, plans: str, device, n: int) -> list[dict]:
    trainer = build("nnUNetTrainer", dataset, plans, device)
    os.environ["nnUNet_n_proc_DA"] = "0"
    tr, _ = trainer.get_dataloaders()
    return [next(tr) for _ in range(n)]


def _sync(device) -> None:
    import torch

    if device.type == "cuda":
        torch.cuda.synchronize()


def _rss_kib(field: str) -> int:
    with open("/proc/self/status") as f:
        return next(int(line.split()[1]) for line in f if line.startswith(field))


def _cpu_peak_child(name, dataset, plans, batches, queue):
    import nnunetv2.run.run_training  # noqa: F401  (imports are not the trainer's memory)
    import torch

    before = _rss_kib("VmRSS")
    trainer = build(name, dataset, plans, torch.device("cpu"))
    for b in batches:
        trainer.train_step(b)
    queue.put((_rss_kib("VmHWM") - before) * 1024)


def peak_memory(name: str, dataset: str, plans: str, device, batches: list[dict]) -> int:
    import torch

    if device.type == "cuda":
        trainer = build(name, dataset, plans, device)
        trainer.train_step(batches[0])
        _sync(device)
        torch.cuda.reset_peak_memory_stats()
        base = torch.cuda.memory_allocated()
        for b in batches:
            trainer.train_step(b)
        _sync(device)
        peak = torch.cuda.max_memory_allocated() - base
        del trainer
        torch.cuda.empty_cache()
        return peak
    ctx = multiprocessing.get_context("spawn")  # a fresh process: its peak RSS is this trainer's
    values = []
    for _ in range(3):  # RSS depends on the allocator's mood: median of three fresh processes
        queue = ctx.Queue()
        child = ctx.Process(target=_cpu_peak_child, args=(name, dataset, plans, batches, queue))
        child.start()
        values.append(queue.get())
        child.join()
    return int(statistics.median(values))


def main(argv: list[str] | None = None) -> dict:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--device", choices=["cpu", "cuda"], default="cpu")
    p.add_argument("-p", default=None, help="plans identifier (default: nnUNetPlans_cpu_tiny on cpu; on cuda "
                                            "nnUNetPlans_bratslike, the network and 128x160x112 patch nnU-Net plans "
                                            "for BraTS 2021)")
    p.add_argument("--steps", type=int, default=None, help="timed steps per trainer (default 10 cpu, 30 cuda)")
    p.add_argument("--warmup", type=int, default=3)
    p.add_argument("--trainers", nargs="+", default=TRAINERS)
    p.add_argument("--workspace", default=None, help="reuse this workspace folder (default: a new temp dir)")
    p.add_argument("-d", type=int, default=None, help="benchmark on this dataset of the nnU-Net folders already set "
                                                      "in the environment (it must be preprocessed) instead of a "
                                                      "new phantom workspace")
    p.add_argument("--compile", action="store_true", help="let nnU-Net torch.compile the networks (it does so by "
                                                           "default on CUDA; off here unless asked)")
    p.add_argument("--json", default=None, help="write {trainer: {time_ratio, memory_ratio, ...}} here")
    a = p.parse_args(argv)
    os.environ["nnUNet_compile"] = "t" if a.compile else "f"
    if a.d is None:
        ws = make_workspace(990, n_train=6, root=a.workspace)
    else:  # the untrained teacher checkpoints go to a temp results folder, never into the user's
        import tempfile

        os.environ["nnUNet_results"] = tempfile.mkdtemp(prefix="mtg_bench_results_")
        from nnunetv2.utilities.dataset_name_id_conversion import maybe_convert_to_dataset_name
        from nnunetv2_mtg.paths import trainers_folder

        os.environ.setdefault("nnUNet_extTrainer", trainers_folder())
        ws = {"name": maybe_convert_to_dataset_name(a.d)}

    import torch

    device = torch.device(a.device)
    plans = a.p or ("nnUNetPlans_cpu_tiny" if a.device == "cpu" else write_brats_like_plans(ws["name"]))
    steps = a.steps or (10 if a.device == "cpu" else 30)
    batches = stored_batches(ws["name"], plans, device, 4)
    save_teachers(ws["name"], plans, a.trainers)

    trainers = {name: build(name, ws["name"], plans, device) for name in a.trainers}
    times = {name: [] for name in trainers}
    for i in range(a.warmup + steps):
        for name, trainer in trainers.items():  # interleaved: drifts hit every trainer alike
            batch = batches[i % len(batches)]
            _sync(device)
            t0 = time.perf_counter()
            trainer.train_step(batch)
            _sync(device)
            if i >= a.warmup:
                times[name].append(time.perf_counter() - t0)
    del trainers
    memory = {name: peak_memory(name, ws["name"], plans, device, batches) for name in a.trainers}

    stock = a.trainers[0]
    result = {}
    where = torch.cuda.get_device_name() if a.device == "cuda" else f"{os.cpu_count()} CPU cores"
    print(f"device {a.device} ({where}), torch {torch.__version__}, plans {plans}, compile {a.compile}, "
          f"{steps} steps after {a.warmup} warm-up")
    print("time ratio: median over the interleaved rounds of (trainer step / stock step), with the 10th-90th "
          "percentile of those per-round ratios as its spread")
    print(f"{'trainer':38s} {'median s/step':>14s} {'time ratio':>10s} {'p10-p90':>13s} {'peak MiB':>9s} "
          f"{'mem ratio':>9s}")
    for name in a.trainers:
        med = statistics.median(times[name])
        per_round = np.array(times[name]) / np.array(times[stock])
        result[name] = {"median_step_s": med, "time_ratio": float(np.median(per_round)),
                        "time_ratio_p10": float(np.percentile(per_round, 10)),
                        "time_ratio_p90": float(np.percentile(per_round, 90)),
                        "peak_memory_bytes": memory[name], "memory_ratio": memory[name] / memory[stock]}
        r = result[name]
        spread = f"{r['time_ratio_p10']:.2f}-{r['time_ratio_p90']:.2f}"
        print(f"{name:38s} {med:14.4f} {r['time_ratio']:10.3f} {spread:>13s} {memory[name] / 2**20:9.1f} "
              f"{r['memory_ratio']:9.3f}")
    return write_json(a.json, result)


if __name__ == "__main__":
    main()
