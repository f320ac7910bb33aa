"""--tables: an earlier run's per-case tables (<trainer>.csv.gz beside a run.json) reused instead of training and
evaluating those model-folds again, after checking that they pair with this run."""
from __future__ import annotations

import json
import os

from lineup import FORMER_NAMES
from nnunetv2_mtg.report import PER_CASE_FIELDS, read_csv, write_csv_atomic

Reused = dict[tuple[str, int], list[dict]]  # (trainer, fold): its per-case rows


def load_tables(folders: list[str], this_run: dict, cases: set[str], subsets: set[str], trainers: list[str],
                folds: list[int]) -> Reused:
    """The rows of the trainers and folds of this run found in `folders` (the first folder that holds a model-fold
    gives it, so the main comparisons' tables can stand beside a later run's own), checked before anything is
    trained: each folder's run.json must equal `this_run` (dataset, plans, configuration, iterations), and each
    reused fold must hold every one of `cases` in every one of `subsets`, or the pairing would be wrong. A table under
    a trainer's former name (lineup.FORMER_NAMES) is read as the trainer's."""
    reused: Reused = {}
    for folder in folders:
        for key, rows in _load_folder(folder, this_run, cases, subsets, trainers, folds).items():
            reused.setdefault(key, rows)
    return reused


def _load_folder(folder: str, this_run: dict, cases: set[str], subsets: set[str], trainers: list[str],
                 folds: list[int]) -> Reused:
    run = os.path.join(folder, "run.json")
    that = None
    if os.path.isfile(run):
        with open(run) as f:
            that = {"configuration": "3d_fullres", **json.load(f)}  # tables written before -c were all 3d_fullres
    if that != this_run:
        raise SystemExit(f"--tables {folder} holds models of {that or 'an unknown run (no run.json)'}, "
                         f"this run trains {this_run}: reuse tables only with the same data, plans and "
                         "--iterations, or leave --tables out to train and evaluate everything.")
    former = {now: was for was, now in FORMER_NAMES.items()}
    reused: Reused = {}
    for t in trainers:
        path = os.path.join(folder, f"{t}.csv.gz")
        if not os.path.isfile(path) and t in former:
            path = os.path.join(folder, f"{former[t]}.csv.gz")
        if not os.path.isfile(path):
            continue
        rows = read_csv(path)
        for f in folds:
            fold_rows = [r for r in rows if r["fold"] == str(f)]
            if not fold_rows:
                continue
            pairs = {(r["case"], r["subset"]) for r in fold_rows}
            if pairs != {(c, s) for c in cases for s in subsets}:
                raise SystemExit(f"{path} fold {f} is not a table of this run's test cases over all {len(subsets)} "
                                 f"modality subsets: {len(pairs)} case x subset pairs, {len(cases) * len(subsets)} "
                                 "expected. Point --tables at the per_case/ folder of a run on the same data, or "
                                 "leave it out to train and evaluate everything.")
            reused[(t, f)] = fold_rows
    return reused


def trainer_rows(trainer: str, reused: Reused, per_case: str) -> list[dict]:
    """The trainer's per-case rows: its reused folds, the others from its evaluation's table `per_case`."""
    rows = [r for (t, _), fold_rows in sorted(reused.items()) if t == trainer for r in fold_rows]
    if os.path.isfile(per_case):
        rows += [r for r in read_csv(per_case) if (trainer, int(r["fold"])) not in reused]
    return rows


def write_table(path: str, rows: list[dict]) -> None:
    """Write a trainer's per-case `rows` to its table at `path`; the rows of any other fold already there are kept.
    per_case/ is also where a resumed grid finds its finished models (--tables), so a report over fewer folds, or one
    freshly evaluated fold, must not drop the rest."""
    folds = {str(r["fold"]) for r in rows}
    kept = [r for r in read_csv(path) if r["fold"] not in folds] if os.path.isfile(path) else []
    write_csv_atomic(path, PER_CASE_FIELDS, sorted(kept + rows, key=lambda r: (int(r["fold"]), r["case"])))
