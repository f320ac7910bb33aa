"""How far does one retraining move one model? The same trainer, fold and budget trained a second time.

    python benchmarks/noise_floor.py [-c 2d] [--iterations 2000] [--trainer nnUNetTrainerModalityDropout] [--fold 0]
                                     [--workspace DIR] [--results docs/accuracy_2d]

The first training is the accuracy experiment's own model of the workspace (trained here if it is missing); the
second goes to a results folder of its own inside the workspace (nnU-Net does not fix a seed, so it is another draw
of the same training). Both are scored on the test cases over all 15 subsets, and the second minus the first is
reported with a bootstrap CI over the cases (one pair of runs: no fold variance in it) for the mean over the subsets
and for the full input: the smallest difference between two trainers that one training run per fold can show.
Writes noise_floor.md to --results. Resumable like the experiment.
"""
from __future__ import annotations

import argparse
import os
import shlex
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(HERE)


def report(tables: dict, fold: int, header: list[str]) -> tuple[list[str], dict]:
    """Markdown lines and {figure: ((first, second), PairedDifference)} of the two runs' dice tables."""
    from nnunetv2_mtg import statistics

    lines = ["# One model trained twice", "", "Written by `benchmarks/noise_floor.py`.", "", *header,
             "- Dice x100 (mean of WT, TC, ET); difference = second minus first, 95% bootstrap CI over the cases", "",
             "| | first | second | second - first [95% CI] |", "| --- | ---: | ---: | ---: |"]
    result = {}
    full = statistics.full_input(tables["first"])
    for label, subset in (("mean over the 15 subsets", statistics.MEAN), ("full input", full)):
        means = [100 * statistics.fold_means(tables[r], subset)[str(fold)] for r in ("first", "second")]
        d = statistics.paired_difference(tables["second"], tables["first"], subset, statistics.MEAN)
        result[label] = (means, d)
        lines.append(f"| {label} | {means[0]:.1f} | {means[1]:.1f} | {100 * d.mean:+.1f} "
                     f"[{100 * d.ci_low:+.1f}, {100 * d.ci_high:+.1f}] |")
    return lines, result


def main(argv: list[str] | None = None) -> dict:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("-c", default="2d")
    p.add_argument("--iterations", type=int, default=2000)
    p.add_argument("--trainer", default="nnUNetTrainerModalityDropout")
    p.add_argument("--fold", type=int, default=0)
    p.add_argument("--device", choices=["cpu", "cuda"], default="cpu")
    p.add_argument("--workspace", default=os.path.join(HERE, "results", "accuracy_2d"))
    p.add_argument("--results", default=os.path.join(REPO, "docs", "accuracy_2d"))
    a = p.parse_args(argv)
    command = "python benchmarks/noise_floor.py " + shlex.join(sys.argv[1:] if argv is None else argv)
    sys.path.insert(0, HERE)
    import accuracy

    from nnunetv2_mtg import statistics
    from nnunetv2_mtg.report import read_csv

    exp = accuracy.Experiment(accuracy.parse(["-c", a.c, "--device", a.device, "--iterations", str(a.iterations),
                                              "--folds", str(a.fold), "--trainers", a.trainer,
                                              "--workspace", a.workspace]))
    exp.prepare_data()
    accuracy.write_variants(exp.ext, [a.trainer], a.iterations)
    name = accuracy.variant(a.trainer, a.iterations)
    tables = {}
    for run in ("first", "second"):
        if run == "second":
            os.environ["nnUNet_results"] = os.path.join(exp.ws, "noise_floor", "nnUNet_results")
        exp.planned = [(a.trainer, a.fold)]
        exp.jobs_total = 1
        exp.run_jobs(exp.planned)
        out = os.path.join(exp.ws, "noise_floor", run)
        exp.evaluate([a.trainer], [a.fold], out)
        tables[run] = statistics.dice_table(read_csv(os.path.join(out, name, "per_case.csv")))
    header = [f"- command: `{command}`",
              f"- {name}, fold {a.fold}, {exp.dataset}, plans `{exp.plans}`, configuration {a.c}; the second "
              "training in its own results folder, both scored on the same test cases"]
    lines, result = report(tables, a.fold, header)
    os.makedirs(a.results, exist_ok=True)
    with open(os.path.join(a.results, "noise_floor.md"), "w") as f:
        f.write("\n".join(lines) + "\n")
    print("\n".join(lines))
    return result


if __name__ == "__main__":
    main()
