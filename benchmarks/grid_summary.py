"""The grid's two summary tables (each trainer's Dice per fold; the key comparisons with their CIs, Holm p and
verdicts) generated from the reports of benchmarks/accuracy.py and written into the marked blocks of README.md and
docs/RESULTS.md, so no figure there is copied by hand.

    python benchmarks/grid_summary.py --results docs/accuracy_2d docs/accuracy_2d/forms --into README.md docs/RESULTS.md

A block is the text between `<!-- grid-summary:trainers -->` (or `:comparisons`) and `<!-- /grid-summary -->`.
A trainer or comparison is taken from the first results folder that has it; one no folder has yet is left out.
"""
from __future__ import annotations

import argparse
import os
import re
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from lineup import DEFAULT_STUDENT, DEFAULT_TEACHER, DROPOUT, KD, NOALIGN, PROTOKD, STOCK  # noqa: E402
from nnunetv2_mtg.atomic import write_text  # noqa: E402
from nnunetv2_mtg.report import p_text, per_fold_cell, read_csv  # noqa: E402
from nnunetv2_mtg.statistics import MEAN, PairedDifference, verdict  # noqa: E402

MIXTURE, FIRST_BLOCK = DEFAULT_TEACHER + "Mixture", DEFAULT_TEACHER + "FirstBlock"
FIRST_BLOCK_STUDENT = DEFAULT_STUDENT + "FirstBlock"
TRAINERS = {  # trainer -> its row's label, in the table's order
    STOCK: f"stock `{STOCK}`",
    DROPOUT: f"`{DROPOUT}`",
    NOALIGN: f"`{NOALIGN}` (MTG's network, no alignment)",
    DEFAULT_TEACHER: f"`{DEFAULT_TEACHER}` (the default: the same network with alignment)",
    KD: f"`{KD}` (distilled from dropout)",
    DEFAULT_STUDENT: f"`{DEFAULT_STUDENT}` (distilled from the default teacher)",
    MIXTURE: f"`{MIXTURE}` (the scale-invariant loss)",
    FIRST_BLOCK: f"`{FIRST_BLOCK}` (alignment in nnU-Net's own first convolution)",
    FIRST_BLOCK_STUDENT: f"`{FIRST_BLOCK_STUDENT}` (distilled from the first-block teacher)",
    PROTOKD: f"`{PROTOKD}` (KD with ProtoKD's settings and prototypes)",
}
FULL = "full input: "
COMPARISONS = [  # (label, trainer, reference); a label starting with FULL compares the full input only
    ("dropout minus stock", DROPOUT, STOCK),
    (FULL + "dropout minus stock", DROPOUT, STOCK),
    (FULL + "NoAlign minus stock", NOALIGN, STOCK),
    (FULL + "default teacher minus stock", DEFAULT_TEACHER, STOCK),
    (FULL + "KD student minus stock", KD, STOCK),
    (FULL + "MTG student minus stock", DEFAULT_STUDENT, STOCK),
    ("architecture: NoAlign minus dropout", NOALIGN, DROPOUT),
    ("alignment: default teacher minus NoAlign", DEFAULT_TEACHER, NOALIGN),
    ("default teacher minus dropout", DEFAULT_TEACHER, DROPOUT),
    ("scale-invariant mixture teacher minus the default", MIXTURE, DEFAULT_TEACHER),
    ("first-block teacher minus the default", FIRST_BLOCK, DEFAULT_TEACHER),
    ("MTG student minus KD (the paper: +1.75)", DEFAULT_STUDENT, KD),
    ("ProtoKD student minus KD", PROTOKD, KD),
    ("first-block student minus the default student", FIRST_BLOCK_STUDENT, DEFAULT_STUDENT),
]
BLOCK = re.compile(r"(<!-- grid-summary:(\w+) -->\n).*?(<!-- /grid-summary -->)", re.S)


def _x100(v: float | str, sign: str = "") -> str:
    return f"{100 * float(v):{sign}.1f}".replace("-", "−")


def trainer_table(results: list[str]) -> str:
    """Per trainer: folds, mean Dice over the 15 subsets and at full input, each the mean over the folds with the
    per-fold values; the mean-region rows of each folder's accuracy/summary.csv."""
    found: dict[str, dict] = {}
    for folder in results:
        for row in read_csv(os.path.join(folder, "accuracy", "summary.csv")):
            if row["region"] == MEAN and row["trainer"] in TRAINERS:
                found.setdefault(row["trainer"], row)
    lines = ["| nnU-Net trainer, mean over the folds (per fold) | folds | mean Dice, 15 subsets | all four modalities |",
             "| --- | ---: | ---: | ---: |"]
    for trainer, label in TRAINERS.items():
        if trainer in found:
            r = found[trainer]
            per_fold = r["per_fold_mean_dice"].split()
            full_per_fold = r["per_fold_full_input_dice"].split()
            lines.append(f"| {label} | {r['folds'].replace(' ', ', ')} | {_x100(r['mean_dice_15_subsets'])} "
                         f"({' / '.join(_x100(v) for v in per_fold)}) | {_x100(r['full_input_dice'])} "
                         f"({' / '.join(_x100(v) for v in full_per_fold)}) |")
    return "\n".join(lines)


def _difference(row: dict, negate: bool) -> tuple[PairedDifference, float]:
    s = -1.0 if negate else 1.0
    low, high = sorted((s * float(row["ci_low"]), s * float(row["ci_high"])))
    per_fold = tuple((f, s * float(v)) for f, v in (x.split(":") for x in row["per_fold"].split()))
    return PairedDifference(s * float(row["difference"]), low, high, float(row["p_value"]), int(row["cases"]),
                            int(row["folds"]), per_fold), float(row["holm_p"])


def comparison_table(results: list[str]) -> str:
    """The key comparisons: difference [95% CI] x100, per fold, Holm p (within the report the row comes from) and
    verdict; the mean-region rows of each folder's accuracy/paired.csv, a reversed pair negated."""
    rows: dict[tuple[str, str, bool], tuple[dict, bool]] = {}
    for folder in results:
        for row in read_csv(os.path.join(folder, "accuracy", "paired.csv")):
            if row["region"] == MEAN:
                full = row["subset"] != MEAN
                rows.setdefault((row["trainer"], row["reference"], full), (row, False))
                rows.setdefault((row["reference"], row["trainer"], full), (row, True))
    lines = ["| comparison | difference [95% CI] | per fold | Holm p | verdict |", "| --- | ---: | ---: | ---: | --- |"]
    for label, trainer, reference in COMPARISONS:
        key = (trainer, reference, label.startswith(FULL))
        if key in rows:
            d, holm = _difference(*rows[key])
            lines.append(f"| {label} | {_x100(d.mean, '+')} [{_x100(d.ci_low, '+')}, {_x100(d.ci_high, '+')}] | "
                         f"{per_fold_cell(d).replace('-', '−')} | {p_text(holm)} | {verdict(d, holm)} |")
    return "\n".join(lines)


def blocks(results: list[str]) -> dict[str, str]:
    """Each block's table by its name."""
    return {"trainers": trainer_table(results), "comparisons": comparison_table(results)}


def fill(text: str, blocks: dict[str, str], path: str) -> str:
    """`text` with each marked block's body replaced by blocks[name]; an unknown block name is refused."""
    def body(m: re.Match) -> str:
        if m.group(2) not in blocks:
            raise SystemExit(f"{path}: unknown block `grid-summary:{m.group(2)}`; known: {', '.join(blocks)}")
        return m.group(1) + blocks[m.group(2)] + "\n" + m.group(3)

    return BLOCK.sub(body, text)


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--results", nargs="+", required=True,
                   help="results folders of benchmarks/accuracy.py (each with accuracy/summary.csv and paired.csv), "
                        "the first one that has a trainer or comparison wins")
    p.add_argument("--into", nargs="+", required=True, help="markdown files with grid-summary blocks to rewrite")
    a = p.parse_args(argv)
    for folder in a.results:
        for name in ("summary.csv", "paired.csv"):
            if not os.path.isfile(os.path.join(folder, "accuracy", name)):
                raise SystemExit(f"{folder} has no accuracy/{name}: give the --results folder of a report written "
                                 f"by benchmarks/accuracy.py (--report-only regenerates it from the per-case tables)")
    tables = blocks(a.results)
    texts = {}
    for path in a.into:  # every file is checked before the first is written
        with open(path) as f:
            text = f.read()
        if not BLOCK.search(text):
            raise SystemExit(f"{path} has no grid-summary block; mark where a table goes with "
                             f"`<!-- grid-summary:trainers -->` (or `:comparisons`) and `<!-- /grid-summary -->`")
        texts[path] = fill(text, tables, path)
    for path, text in texts.items():
        write_text(path, text)
        print(f"wrote the grid summary into {path}")


if __name__ == "__main__":
    main()
