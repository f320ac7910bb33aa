"""RESULTS.md and its CSVs from a finished (or partly finished) run of benchmarks/accuracy.py."""
from __future__ import annotations

import json
import os
import platform
import shutil
from dataclasses import dataclass

import numpy as np

from nnunetv2_mtg import statistics
from nnunetv2_mtg.atomic import atomic_path, write_text
from nnunetv2_mtg.report import CI_TEXT, paired_rows, read_csv, region_table, write_csv_atomic
from tables import write_table

SUMMARY_FIELDS = ("trainer", "folds", "region", "mean_dice_15_subsets", "sd_over_folds", "full_input_dice",
                  "full_input_sd_over_folds", "per_fold_mean_dice", "per_fold_full_input_dice")


@dataclass
class RunResults:
    """What the report says of one run of benchmarks/accuracy.py, gathered from its workspace."""

    command: str
    dataset: str
    test_cases: int
    plans: str
    configuration: str
    iterations: int
    folds: list[int]
    trainers: list[str]  # every trainer of the run, for the comparison blocks
    per_case: dict[str, dict[str, list[dict]]]  # "teachers"/"students" -> trainer -> per-case rows, all its folds
    references: dict[str, str]  # group -> the trainer its per-subset comparison is against
    best_form: str | None  # the screening's choice; None without --screening
    trained_on: str
    evaluated_on: str
    runs: list[dict]  # every invocation in the workspace: command, machine, seconds, ended[, note]
    tables: list[str] | None  # --tables
    reused: list[tuple[str, int]]  # model-folds taken from it
    evaluation: str  # the workspace's evaluation folder (students/ and screening_fold0/ comparisons)
    gap: str | None  # the gap report's folder (may not exist); None: no gap report
    gap_fold: int | None
    workspace: str


def machine(device: str) -> str:
    import nnunetv2  # noqa: F401
    import torch
    from importlib.metadata import version

    where = torch.cuda.get_device_name() if device == "cuda" else f"{os.cpu_count()} CPU cores ({platform.processor() or platform.machine()})"
    return f"{where}, torch {torch.__version__}, nnunetv2 {version('nnunetv2')}, Python {platform.python_version()}"


def _commit() -> str:
    """The checkout's commit; "unknown" without git (a tarball, a machine without the binary)."""
    import subprocess

    try:
        proc = subprocess.run(["git", "-C", os.path.dirname(os.path.abspath(__file__)), "rev-parse", "--short", "HEAD"],
                              capture_output=True, text=True)
    except OSError:
        return "unknown"
    return proc.stdout.strip() or "unknown"


def comparisons(trainers: list[str]) -> list[tuple[str, str, list[str]]]:
    """(title, reference, trainers compared with it): every teacher against modality dropout, every MTG teacher
    against the no-alignment ablation (what the alignment itself buys), the other MTG forms against the default
    mixture stem (a form replaces the default only if it is not worse), every student against the KD student, the
    other MTG students against the default one (a form is decided by its student as well as by its teacher)."""
    from lineup import DEFAULT_STUDENT, DEFAULT_TEACHER as default, DROPOUT, KD, NOALIGN, STOCK, STUDENTS, TEACHERS

    teachers = [t for t in trainers if t in TEACHERS]
    students = [t for t in trainers if t in STUDENTS]
    mtg = [t for t in teachers if t.startswith("nnUNetTrainerMTGTeacher") and t != NOALIGN]
    blocks = [("Teachers against modality dropout", DROPOUT, [t for t in teachers if t != DROPOUT]),
              ("MTG teachers against the same network without alignment (the ablation)", NOALIGN, mtg),
              ("MTG teacher forms against the default, the mixture stem with the raw loss", default,
               [t for t in mtg if t != default]),
              ("Students against the KD student", KD, [t for t in students if t != KD]),
              ("MTG student forms against the default student", DEFAULT_STUDENT,
               [t for t in students if t.startswith(DEFAULT_STUDENT) and t != DEFAULT_STUDENT]),
              ("Full input only, against stock nnU-Net", STOCK, [t for t in trainers if t != STOCK])]
    return [(title, ref, group) for title, ref, group in blocks if ref in trainers and group]


def paired_section(tables: dict, trainers: list[str]) -> tuple[list[str], list[dict]]:
    """Markdown and CSV rows of every comparison block: report.region_table on the mean over the 15 subsets (or the
    full input, against stock) and report.paired_rows with the block's title and Holm p."""
    lines, rows = [], []
    for title, reference, group in comparisons([t for t in trainers if t in tables]):
        full_only = title.startswith("Full input")
        subset = statistics.full_input(tables[reference]) if full_only else statistics.MEAN
        diffs = {t: {r: statistics.paired_difference(tables[t], tables[reference], subset, r)
                     for r in ("WT", "TC", "ET", statistics.MEAN)} for t in group}
        table, adjusted = region_table(diffs)
        lines += ["", f"### {title}" + (" (Dice with all four modalities)" if full_only else " (mean over the 15 subsets)"),
                  "", *table]
        rows += [{"comparison": title, **row, "holm_p": adjusted[row["trainer"]] if row["region"] == statistics.MEAN
                  else ""} for row in paired_rows({t: {(subset, r): d for r, d in diffs[t].items()} for t in group},
                                                  reference)]
    return lines, rows


def summary_rows(table: dict, trainer: str) -> list[dict]:
    full = statistics.full_input(table)
    regions = sorted({k[3] for k in table if k[3] != statistics.MEAN}) + [statistics.MEAN]
    rows = []
    for r in regions:
        per_fold = statistics.fold_means(table, statistics.MEAN, r)
        full_fold = statistics.fold_means(table, full, r)
        rows.append({"trainer": trainer, "folds": " ".join(map(str, per_fold)), "region": r,
                     "mean_dice_15_subsets": round(float(np.mean(list(per_fold.values()))), 5),
                     "sd_over_folds": round(statistics.spread(list(per_fold.values())), 5),
                     "full_input_dice": round(float(np.mean(list(full_fold.values()))), 5),
                     "full_input_sd_over_folds": round(statistics.spread(list(full_fold.values())), 5),
                     "per_fold_mean_dice": " ".join(f"{v:.5f}" for v in per_fold.values()),
                     "per_fold_full_input_dice": " ".join(f"{v:.5f}" for v in full_fold.values())})
    return rows


def group_comparison(ev: str, name: str, rows: dict[str, list[dict]], reference: str) -> str:
    """One group's trainers side by side per subset (markdown, CSV and a heatmap of Dice and of each trainer minus
    `reference`), on all their folds (some may come from --tables), written over the evaluation's own comparison of
    the folds it evaluated; returns the folder."""
    from nnunetv2_mtg.evaluate import write_comparison
    from nnunetv2_mtg.report import summarise

    first = next(iter(rows.values()))
    subsets = list(dict.fromkeys(r["subset"] for r in first))
    regions = list(dict.fromkeys(r["region"] for r in first))
    out = os.path.join(ev, name)
    os.makedirs(out, exist_ok=True)
    write_comparison(out, {t: summarise(r, subsets, regions) for t, r in rows.items()},
                     {t: statistics.dice_table(r) for t, r in rows.items()}, reference, subsets, regions)
    return out


def _pct(v: float) -> str:
    return "n/a" if v != v else f"{100 * v:.2f}"


def write_run_json(folder: str, dataset: str, plans: str, configuration: str, iterations: int) -> None:
    """run.json beside the per-case tables: what --tables checks before reusing them."""
    with open(os.path.join(folder, "run.json"), "w") as f:
        json.dump({"dataset": dataset, "plans": plans, "configuration": configuration, "iterations": iterations}, f,
                  indent=1)


def write_results(r: RunResults, results: str) -> str:
    """RESULTS.md and accuracy/ (summary.csv, paired.csv, gap.csv, per_case/) in `results`; returns RESULTS.md."""
    it = r.iterations
    out_dir = os.path.abspath(results)
    csv_dir = os.path.join(out_dir, "accuracy")
    os.makedirs(csv_dir, exist_ok=True)
    lines = ["# Does alignment help? The accuracy experiment", "",
             "Written by `benchmarks/accuracy.py`; every number below comes from the run described here.", "",
             f"- command: `{r.command}`",
             f"- data: {r.dataset}, {r.test_cases} test cases (the same for every model), "
             f"plans `{r.plans}`, configuration {r.configuration}",
             f"- budget: {it} training iterations per model (batch size of the plans), nnU-Net's folds "
             f"{', '.join(map(str, r.folds))} as repeats (different training splits and initialisations)"
             + (", screening: fold 0 of every trainer, the other folds of the baselines and the best MTG form "
                f"(chosen on fold 0's validation cases: **{r.best_form}**)" if r.best_form else ""),
             f"- code: commit {_commit()} of nnunetv2-mtg",
             f"- trained on: {r.trained_on}",
             f"- evaluated on: {r.evaluated_on}",
             f"- wall time: {sum(x['seconds'] for x in r.runs) / 3600:.1f} h over {len(r.runs)} run(s) of the command:",
             *[f"  {i}. `{x['command']}` on {x['machine']}: {x['seconds'] / 60:.1f} min (ended {x['ended']})"
               + (f"; {x['note']}" if x.get("note") else "") for i, x in enumerate(r.runs, 1)],
             *(["- reused from " + " and ".join(f"`{t}`" for t in r.tables or []) + " (earlier runs' per-case "
                "tables, neither retrained nor re-evaluated here): "
                + ", ".join(f"{t} fold {f}" for t, f in sorted(r.reused))] if r.reused else []),
             "- Dice x100, mean over the cases; \"mean\" = mean of WT, TC, ET; spread = SD of the per-fold means", ""]

    summary, tables, figures = [], {}, []
    lines += ["## Mean Dice over the 15 modality subsets, and with all modalities", "",
              "| trainer | folds | WT | TC | ET | mean (SD over folds) | per fold | full input: mean (SD) |",
              "| --- | --- | ---: | ---: | ---: | ---: | ---: | ---: |"]
    os.makedirs(os.path.join(csv_dir, "per_case"), exist_ok=True)
    write_run_json(os.path.join(csv_dir, "per_case"), r.dataset, r.plans, r.configuration, it)
    for name, group_rows in r.per_case.items():
        for t, per_case in group_rows.items():
            tables[t] = statistics.dice_table(per_case)
            # beside the report, so a later run can pair new models with these without the workspace (--tables)
            write_table(os.path.join(csv_dir, "per_case", f"{t}.csv.gz"), per_case)
            rows = summary_rows(tables[t], t)
            summary += rows
            by = {x["region"]: x for x in rows}
            m = by[statistics.MEAN]
            per_fold = " / ".join(f"{100 * float(v):.1f}" for v in m["per_fold_mean_dice"].split())
            lines.append(f"| {t} | {m['folds']} | " + " | ".join(_pct(by[x]["mean_dice_15_subsets"]) for x in
                                                                  ("WT", "TC", "ET") if x in by) +
                         f" | {_pct(m['mean_dice_15_subsets'])} ({_pct(m['sd_over_folds'])}) | {per_fold} | "
                         f"{_pct(m['full_input_dice'])} ({_pct(m['full_input_sd_over_folds'])}) |")
        if r.references[name] in group_rows and len(group_rows) > 1:  # the per-subset heatmap, beside the report
            figure = os.path.join(csv_dir, f"{name}_per_subset.png")
            with atomic_path(figure) as tmp:
                shutil.copyfile(os.path.join(group_comparison(r.evaluation, name, group_rows, r.references[name]),
                                             "comparison.png"), tmp)
            figures.append((name, os.path.relpath(figure, out_dir)))
    write_csv_atomic(os.path.join(csv_dir, "summary.csv"), SUMMARY_FIELDS, summary)

    lines += ["", "## Paired differences", "",
              f"Dice x100, trainer minus reference over the cases x folds both have; {CI_TEXT}. Holm: p corrected over "
              "the trainers of one table; a verdict of better or worse needs the CI to exclude 0 and the Holm p < 0.05."]
    paired_lines, paired = paired_section(tables, r.trainers)
    lines += paired_lines
    if paired:
        write_csv_atomic(os.path.join(csv_dir, "paired.csv"), tuple(paired[0]), paired)

    for name, figure in figures:
        lines += ["", f"## The {name} per subset, and each minus {r.references[name]}", "", f"![{name}]({figure})"]
    students = os.path.join(r.evaluation, "students", "comparison.md")
    if os.path.isfile(students):
        lines += ["", "## Students per subset (the main comparison)", "",
                  open(students).read().replace("## ", "### ").replace(f"_{it}iters", "")]
    screening = os.path.join(r.evaluation, "screening_fold0", "comparison.md")
    if os.path.isfile(screening):
        lines += ["", "## Screening: every trainer on fold 0", "",
                  open(screening).read().split("## Paired")[0].replace("## ", "### ").replace(f"_{it}iters", "")]
    gap = os.path.join(r.gap, "gap.md") if r.gap else None
    if gap and os.path.isfile(gap):
        text = open(gap).read().replace(f"_{it}iters", "")
        lines += ["", f"## Modality gap and bypass check of the teachers (fold {r.gap_fold}, test cases)", "",
                  text.split("\n### ")[0].replace("## ", "### ")]
        gap_rows = []
        for t in r.trainers:
            for f in ("bypass.csv", "gap.csv"):
                path = os.path.join(r.gap, f"{t}_{it}iters", f)
                if os.path.isfile(path):
                    gap_rows += [{"trainer": t, "table": f[:-4], **x} for x in read_csv(path)]
        fields = ("trainer", "table", "representation", "aligned", "subset", "nmse", "cka", "changed_fraction",
                  "foreground_voxels", "cases")
        write_csv_atomic(os.path.join(csv_dir, "gap.csv"), fields, gap_rows)
    lines += ["", f"CSVs: `{os.path.relpath(csv_dir, out_dir)}/` (summary.csv, paired.csv, gap.csv, and every model's "
                  f"per-case Dice and HD95 over the subsets and folds in per_case/<trainer>.csv.gz); heatmaps in the "
                  f"workspace ({os.path.relpath(r.workspace, os.path.dirname(out_dir))})."]
    path = os.path.join(out_dir, "RESULTS.md")
    write_text(path, "\n".join(lines) + "\n")
    return path
