"""Where do the models stop learning? Test Dice against the training budget, each budget its own training.

    python benchmarks/learning_curve.py [-c 2d] [--budgets 500 1000 2000 4000] [--trainers T ...] [--fold 0]
                                        [--workspace DIR] [--results docs/learning_curve] [--extend]

nnU-Net's learning rate decays over the whole budget, so a budget is a schedule, not a checkpoint of a longer run:
every budget is trained from scratch as `<trainer>_<N>iters` (the accuracy experiment's variants, same data and
plans: the phantom with the `cpu_2d` preset on the CPU) and scored on the test cases over all 15 modality subsets.
Writes learning_curve.csv, learning_curve.md and learning_curve.png (mean Dice over the subsets and with all
modalities against iterations, one line per trainer) to --results. The converged budget is the smallest at which
both figures of every trainer are within --tolerance Dice points of the largest budget's. Resumable: trained models
and evaluated subsets are kept in the workspace (shared with benchmarks/accuracy.py) and skipped when run again.
--extend adds budgets to the table already in --results (its rows for other budgets are kept, with its commands),
so a longer budget can be added without the earlier models' workspace.
"""
from __future__ import annotations

import argparse
import csv
import os
import shlex
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(HERE)
MIN_BUDGET = 250  # one nnU-Net epoch: below it the "budget" would be a fraction of an epoch, not a schedule
FIELDS = ("trainer", "iterations", "mean_dice_15_subsets", "full_input_dice", "training_minutes")


def converged_budget(rows: list[dict], tolerance: float) -> int | None:
    """The smallest budget at which every trainer's two figures are within `tolerance` of its largest budget's;
    None with fewer than two budgets (nothing to compare against)."""
    budgets = sorted({int(r["iterations"]) for r in rows})
    if len(budgets) < 2:
        return None
    by = {(r["trainer"], int(r["iterations"])): r for r in rows}
    trainers = sorted({r["trainer"] for r in rows})
    for b in budgets:
        if all(abs(float(by[(t, b)][k]) - float(by[(t, budgets[-1])][k])) <= tolerance
               for t in trainers for k in ("mean_dice_15_subsets", "full_input_dice")):
            return b
    return budgets[-1]


def plot(path: str, rows: list[dict]) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 2, figsize=(10, 4), sharey=True)
    for ax, key, title in zip(axes, ("mean_dice_15_subsets", "full_input_dice"),
                              ("mean over the 15 modality subsets", "all four modalities")):
        for t in sorted({r["trainer"] for r in rows}):
            pts = sorted((int(r["iterations"]), float(r[key])) for r in rows if r["trainer"] == t)
            ax.plot([p[0] for p in pts], [p[1] for p in pts], marker="o", label=t)
        ax.set_xscale("log", base=2)
        ax.set_xlabel("training iterations (each budget its own schedule)")
        ax.set_title(title)
        ax.grid(alpha=0.3)
    axes[0].set_ylabel("test Dice x100 (mean of WT, TC, ET)")
    axes[0].legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def markdown(rows: list[dict], budget: int | None, tolerance: float, commands: list[str], header: list[str]) -> str:
    lines = ["# Learning curve", "", "Written by `benchmarks/learning_curve.py`.", "",
             *(f"- command: `{c}`" for c in commands), *header, "", "| trainer | iterations | mean Dice, 15 subsets | full input | training min |",
             "| --- | ---: | ---: | ---: | ---: |"]
    for r in sorted(rows, key=lambda r: (r["trainer"], int(r["iterations"]))):
        lines.append(f"| `{r['trainer']}` | {r['iterations']} | {float(r['mean_dice_15_subsets']):.1f} | "
                     f"{float(r['full_input_dice']):.1f} | {float(r['training_minutes']):.1f} |")
    lines += ["", f"Converged budget (both figures of every trainer within {tolerance:g} Dice of the largest "
                  f"budget's): **{budget}** iterations." if budget else "Fewer than two budgets: no converged budget.",
              "", "![learning curve](learning_curve.png)", ""]
    return "\n".join(lines)


def score(per_case: str) -> tuple[float, float]:
    """(mean Dice x100 over the subsets, Dice x100 with every modality) of one evaluated model, from its per-case
    table."""
    from nnunetv2_mtg import statistics
    from nnunetv2_mtg.report import read_csv

    table = statistics.dice_table(read_csv(per_case))
    (over_subsets,), (full_input,) = (statistics.fold_means(table, s).values()
                                      for s in (statistics.MEAN, statistics.full_input(table)))
    return 100 * over_subsets, 100 * full_input


def parse(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("-c", default="2d", help="nnU-Net configuration (default 2d)")
    p.add_argument("-p", default=None, help="plans (default: the accuracy experiment's for -c and --device)")
    p.add_argument("--device", choices=["cpu", "cuda"], default="cpu")
    p.add_argument("--budgets", type=int, nargs="+", default=[500, 1000, 2000, 4000])
    p.add_argument("--trainers", nargs="+", default=["nnUNetTrainer", "nnUNetTrainerModalityDropout"])
    p.add_argument("--fold", type=int, default=0)
    p.add_argument("--tolerance", type=float, default=1.0, help="Dice points from the largest budget (default 1)")
    p.add_argument("--workspace", default=os.path.join(HERE, "results", "accuracy_2d"))
    p.add_argument("--results", default=os.path.join(REPO, "docs", "learning_curve"))
    p.add_argument("--extend", action="store_true",
                   help="keep the rows (and commands) of the table already in --results for budgets not trained now")
    a = p.parse_args(argv)
    low = [b for b in a.budgets if b < MIN_BUDGET]
    if low:
        p.error(f"--budgets {low}: a budget below one nnU-Net epoch ({MIN_BUDGET} iterations) is not a schedule; "
                f"give budgets of at least {MIN_BUDGET}")
    if a.extend and not os.path.isfile(os.path.join(a.results, "learning_curve.csv")):
        p.error(f"--extend: no learning_curve.csv in {a.results} to extend; run without --extend first")
    return a


def earlier(results: str, budgets: list[int]) -> tuple[list[dict], list[str]]:
    """The rows of the table in `results` for budgets other than `budgets`, and the commands that measured them."""
    with open(os.path.join(results, "learning_curve.csv"), newline="") as f:
        rows = [r for r in csv.DictReader(f) if int(r["iterations"]) not in budgets]
    with open(os.path.join(results, "learning_curve.md")) as f:
        commands = [line.split("`")[1] for line in f if line.startswith("- command: `")]
    return rows, commands


def main(argv: list[str] | None = None) -> list[dict]:
    a = parse(argv)
    command = "python benchmarks/learning_curve.py " + shlex.join(sys.argv[1:] if argv is None else argv)
    sys.path.insert(0, HERE)
    import accuracy
    from accuracy_report import machine

    rows, commands = earlier(a.results, a.budgets) if a.extend else ([], [])
    commands.append(command)
    header = []
    for budget in sorted(set(a.budgets)):
        exp_args = ["-c", a.c, "--device", a.device, "--iterations", str(budget), "--folds", str(a.fold),
                    "--trainers", *a.trainers, "--workspace", a.workspace] + (["-p", a.p] if a.p else [])
        exp = accuracy.Experiment(accuracy.parse(exp_args))
        exp.prepare_data()
        accuracy.write_variants(exp.ext, a.trainers, budget)
        exp.planned = [(t, a.fold) for t in a.trainers]
        exp.jobs_total = len(exp.planned)
        exp.run_jobs(exp.planned)
        out = os.path.join(exp.ws, "learning_curve", f"{budget}iters")
        exp.evaluate(a.trainers, [a.fold], out)
        for t in a.trainers:
            mean, full = score(os.path.join(out, accuracy.variant(t, budget), "per_case.csv"))
            minutes = training_minutes(exp.fold_dir(t, a.fold))
            rows.append({"trainer": t, "iterations": budget, "mean_dice_15_subsets": round(mean, 2),
                         "full_input_dice": round(full, 2), "training_minutes": round(minutes, 1)})
        header = [f"- data: {exp.dataset}, {len(os.listdir(exp.labels))} test cases, plans `{exp.plans}`, "
                  f"configuration {a.c}, fold {a.fold}",
                  f"- machine: {machine(a.device)}, ended {time.strftime('%Y-%m-%d %H:%M')}",
                  "- Dice x100 on the test cases, mean of WT, TC, ET; one training per budget (one draw: the noise "
                  "of a retraining is measured separately, docs/RESULTS.md)"]
        write(a, rows, commands, header)
    return rows


def training_minutes(fold_dir: str) -> float:
    """Wall time of a training from nnU-Net's checkpoint: the sum of its epochs' recorded durations."""
    import torch

    ckpt = torch.load(os.path.join(fold_dir, "checkpoint_final.pth"), map_location="cpu", weights_only=False)
    log = ckpt["logging"]
    return sum(e - s for s, e in zip(log["epoch_start_timestamps"], log["epoch_end_timestamps"])) / 60


def write(a: argparse.Namespace, rows: list[dict], commands: list[str], header: list[str]) -> None:
    """The table, Markdown and plot of what is measured so far (after every budget: an interrupted run keeps them)."""
    os.makedirs(a.results, exist_ok=True)
    with open(os.path.join(a.results, "learning_curve.csv"), "w", newline="") as f:
        w = csv.DictWriter(f, FIELDS)
        w.writeheader()
        w.writerows(rows)
    budget = converged_budget(rows, a.tolerance)
    with open(os.path.join(a.results, "learning_curve.md"), "w") as f:
        f.write(markdown(rows, budget, a.tolerance, commands, header))
    plot(os.path.join(a.results, "learning_curve.png"), rows)


if __name__ == "__main__":
    main()
