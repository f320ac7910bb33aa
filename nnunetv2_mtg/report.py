"""Tables and figures of a subset evaluation: per-case CSV, summary CSV, Markdown, Dice heatmaps.

Rows are subsets in the papers' order with a final mean row; columns are regions (WT, TC, ET for BraTS).
"""
from __future__ import annotations

import csv
import gzip
import io

import numpy as np

from nnunetv2_mtg.atomic import atomic_path
from nnunetv2_mtg.metrics import mean_regions

SUBSET_FIELDS = ("case", "subset", "region", "dice", "hd95", "lesionwise_dice", "lesionwise_hd95")  # a cached subset
PER_CASE_FIELDS = ("case", "fold", "subset", "region", "dice", "hd95", "lesionwise_dice", "lesionwise_hd95")
PAIRED_FIELDS = ("trainer", "reference", "subset", "region", "difference", "ci_low", "ci_high", "p_value", "cases",
                 "folds", "per_fold")
CI_TEXT = ("95% CI from a two-level bootstrap (folds and cases resampled, so the training runs' own variance is in "
           "it; with one fold, cases only), two-sided Wilcoxon signed-rank p over the cases' fold-averaged differences")


def write_csv_atomic(path: str, fields: tuple[str, ...], rows: list[dict]) -> None:
    """All rows or nothing at `path`; a .gz path is gzipped with mtime 0, so unchanged rows are an unchanged file."""
    with atomic_path(path) as tmp, open(tmp, "wb") as fh:
        stream = gzip.GzipFile(filename="", mode="wb", fileobj=fh, mtime=0) if path.endswith(".gz") else fh
        with io.TextIOWrapper(stream, encoding="utf-8", newline="") as f:
            w = csv.DictWriter(f, fieldnames=list(fields))
            w.writeheader()
            w.writerows(rows)


def read_csv(path: str) -> list[dict]:
    """Rows of a CSV file, gzipped or not (per-case tables travel as .csv.gz)."""
    with (gzip.open(path, "rt", newline="") if path.endswith(".gz") else open(path, newline="")) as f:
        return list(csv.DictReader(f))


def summarise(rows: list[dict], subsets: list[str], regions: list[str]) -> dict[str, dict[str, tuple[float, float]]]:
    """{subset: {region: (mean dice, mean hd95)}} over cases, plus the 'mean' row over subsets."""
    out = {}
    for s in subsets:
        out[s] = {}
        for r in regions:
            sel = [row for row in rows if row["subset"] == s and row["region"] == r]
            out[s][r] = (float(np.mean([float(x["dice"]) for x in sel])), float(np.mean([float(x["hd95"]) for x in sel])))
    out["mean"] = {r: (float(np.mean([out[s][r][0] for s in subsets])), float(np.mean([out[s][r][1] for s in subsets])))
                   for r in regions}
    return out


def summary_rows(summary: dict, regions: list[str], n_cases: int, n_skipped: int, folds: list) -> list[dict]:
    rows = []
    for subset, values in summary.items():
        row = {"subset": subset, "cases": n_cases, "folds": len(folds), "fold_ids": " ".join(map(str, folds)),
               "skipped_no_label": n_skipped}
        for r in regions:
            row[f"dice_{r}"], row[f"hd95_{r}"] = round(values[r][0], 4), round(values[r][1], 2)
        row["dice_mean"] = round(float(np.mean([values[r][0] for r in mean_regions(regions)])), 4)
        rows.append(row)
    return rows


def summary_fields(regions: list[str]) -> tuple[str, ...]:
    return ("subset", "cases", "folds", "fold_ids", "skipped_no_label", *[f"dice_{r}" for r in regions],
            *[f"hd95_{r}" for r in regions], "dice_mean")


def markdown_table(title: str, summary: dict, regions: list[str], n_cases: int, n_skipped: int,
                   per_fold: dict | None = None) -> str:
    """Dice and HD95 per subset; with several folds, Dice is the mean over cases x folds and the header gives
    the per-fold means of the last row and their spread."""
    note = f"{n_cases} cases" + (f" ({n_skipped} without labels skipped)" if n_skipped else "")
    if per_fold and len(per_fold) > 1:
        from nnunetv2_mtg.statistics import spread

        values = list(per_fold.values())
        note += (f"; folds {', '.join(map(str, per_fold))} pooled. Mean Dice over the subsets per fold: "
                 + ", ".join(f"{100 * v:.2f}" for v in values) + f" (SD over folds {100 * spread(values):.2f})")
    lines = [f"## {title}", "", note, "", "| subset | " + " | ".join(f"Dice {r}" for r in regions) + " | Dice mean | "
             + " | ".join(f"HD95 {r}" for r in regions) + " |",
             "| --- |" + " ---: |" * (2 * len(regions) + 1)]
    for subset, values in summary.items():
        name = f"**{subset}**" if subset == "mean" else subset
        dice = [f"{100 * values[r][0]:.2f}" for r in regions]
        mean = f"{100 * np.mean([values[r][0] for r in mean_regions(regions)]):.2f}"
        hd = [f"{values[r][1]:.2f}" for r in regions]
        lines.append(f"| {name} | " + " | ".join(dice) + f" | {mean} | " + " | ".join(hd) + " |")
    return "\n".join(lines) + "\n"


def comparison_table(summaries: dict[str, dict], regions: list[str]) -> str:
    """Dice of every trainer side by side, and each trainer's difference to the first one."""
    names = list(summaries)
    base = names[0]
    header = ["subset"] + [f"{r} {t}" for r in regions for t in names] + \
             [f"{r} Δ {t}" for r in regions for t in names[1:]]
    lines = ["## Dice side by side (x100); Δ = trainer minus " + base, "",
             "| " + " | ".join(header) + " |", "| --- |" + " ---: |" * (len(header) - 1)]
    for subset in summaries[base]:
        cells = [f"**{subset}**" if subset == "mean" else subset]
        cells += [f"{100 * summaries[t][subset][r][0]:.2f}" for r in regions for t in names]
        cells += [f"{100 * (summaries[t][subset][r][0] - summaries[base][subset][r][0]):+.2f}"
                  for r in regions for t in names[1:]]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def _heatmap(ax, matrix: np.ndarray, rows: list[str], cols: list[str], title: str, cmap: str, vmin, vmax):
    im = ax.imshow(matrix, cmap=cmap, vmin=vmin, vmax=vmax, aspect="auto")
    ax.set_xticks(range(len(cols)), cols)
    ax.set_yticks(range(len(rows)), rows)
    ax.set_title(title, fontsize=9)
    for i in range(matrix.shape[0]):
        for j in range(matrix.shape[1]):
            r, g, b, _ = im.cmap(im.norm(matrix[i, j]))
            dark = 0.299 * r + 0.587 * g + 0.114 * b < 0.5  # white text on dark cells, so every number stays legible
            ax.text(j, i, f"{matrix[i, j]:.1f}", ha="center", va="center", fontsize=8,
                    color="white" if dark else "black")
    return im


def dice_heatmap(path: str, title: str, summary: dict, regions: list[str]) -> None:
    import matplotlib

    matplotlib.use("agg")
    import matplotlib.pyplot as plt

    rows = list(summary)
    matrix = np.array([[100 * summary[s][r][0] for r in regions] for s in rows])
    fig, ax = plt.subplots(figsize=(2 + 1.2 * len(regions), 1 + 0.4 * len(rows)))
    fig.colorbar(_heatmap(ax, matrix, rows, regions, title, "viridis", 0, 100), ax=ax, label="Dice x100")
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def comparison_heatmap(path: str, summaries: dict[str, dict], regions: list[str]) -> None:
    """One Dice heatmap per trainer in the top row; below each but the first, its difference to the first (two rows
    keep the picture readable with many trainers)."""
    import matplotlib

    matplotlib.use("agg")
    import matplotlib.pyplot as plt

    names = list(summaries)
    rows = list(summaries[names[0]])
    n_rows = 2 if len(names) > 1 else 1
    fig, axes = plt.subplots(n_rows, len(names), figsize=(len(names) * (2 + 1.0 * len(regions)),
                                                          n_rows * (1 + 0.4 * len(rows))), squeeze=False)
    dice = {t: np.array([[100 * summaries[t][s][r][0] for r in regions] for s in rows]) for t in names}
    for k, t in enumerate(names):
        _heatmap(axes[0, k], dice[t], rows if k == 0 else [""] * len(rows), regions, t, "viridis", 0, 100)
    if n_rows == 2:
        axes[1, 0].axis("off")
    for k, t in enumerate(names[1:], 1):
        diff = dice[t] - dice[names[0]]
        lim = max(1.0, float(np.abs(diff).max()))
        _heatmap(axes[1, k], diff, rows if k == 1 else [""] * len(rows), regions, f"{t}\nminus {names[0]}", "RdBu",
                 -lim, lim)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def _paired_cell(d) -> str:
    return f"{100 * d.mean:+.2f} [{100 * d.ci_low:+.2f}, {100 * d.ci_high:+.2f}]"


def p_text(p: float) -> str:
    """A p value as the tables print it: two significant digits, <1e-4 below that, n/a for NaN."""
    return "n/a" if p != p else (f"{p:.2g}" if p >= 1e-4 else "<1e-4")


def _p(d) -> str:
    return p_text(d.p_value)


def per_fold_text(d) -> str:
    """The per-fold differences as a CSV cell: `fold:difference ...`."""
    return " ".join(f"{f}:{v:.6f}" for f, v in d.per_fold)


def per_fold_cell(d) -> str:
    return " / ".join(f"{100 * v:+.1f}" for _, v in d.per_fold)


def paired_tables(differences: dict, reference: str, regions: list[str]) -> str:
    """Markdown: per subset, each trainer's mean Dice (over regions) minus the reference's with its 95% CI and
    Wilcoxon p; then the mean over the subsets per region, with the per-fold differences, the Holm-corrected p over
    the trainers of the table and the verdict."""
    from nnunetv2_mtg.statistics import MEAN

    names = list(differences)
    first = next(iter(differences.values()))
    subsets = list(dict.fromkeys(s for s, _ in first))
    any_d = next(iter(first.values()))
    lines = [f"## Paired differences to {reference} (Dice x100, trainer minus reference)", "",
             f"{CI_TEXT}; {any_d.n_cases} cases x {any_d.n_folds} fold(s). Mean Dice over the regions:", "",
             "| subset | " + " | ".join(f"Δ {t} [95% CI] | p" for t in names) + " |",
             "| --- |" + " ---: | ---: |" * len(names)]
    for s in subsets:
        cells = [f"**{s}**" if s == MEAN else s]
        for t in names:
            d = differences[t][(s, MEAN)]
            cells += [_paired_cell(d), _p(d)]
        lines.append("| " + " | ".join(cells) + " |")
    lines += ["", "Mean over the subsets, per region; per fold: the mean difference of each fold's model; Holm: the "
                  "Wilcoxon p corrected over the trainers of this table; better/worse only when the CI excludes 0 "
                  "and the Holm p < 0.05:", ""]
    lines += region_table({t: {r: differences[t][(MEAN, r)] for r in regions + [MEAN]} for t in names})[0]
    return "\n".join(lines) + "\n"


def region_table(differences: dict[str, dict]) -> tuple[list[str], dict[str, float]]:
    """Markdown rows, one per trainer: its difference per region (the mean last) with the 95% CI and Wilcoxon p, the
    per-fold differences of the mean, the mean's p Holm-corrected over the table's trainers and the verdict; and the
    Holm p by trainer. `differences`: trainer -> region -> PairedDifference, `statistics.MEAN` among the regions."""
    from nnunetv2_mtg.statistics import MEAN, holm, verdict

    names = list(differences)
    regions = [r for r in next(iter(differences.values())) if r != MEAN]
    adjusted = dict(zip(names, holm([differences[t][MEAN].p_value for t in names])))
    lines = ["| trainer | " + " | ".join(f"Δ {r} [95% CI] | p" for r in regions + ["mean"]) +
             " | per fold Δ mean | Holm p | verdict |",
             "| --- |" + " ---: | ---: |" * (len(regions) + 1) + " ---: | ---: | --- |"]
    for t in names:
        cells = [t]
        for r in regions + [MEAN]:
            cells += [_paired_cell(differences[t][r]), _p(differences[t][r])]
        d = differences[t][MEAN]
        cells += [per_fold_cell(d), p_text(adjusted[t]), verdict(d, adjusted[t])]
        lines.append("| " + " | ".join(cells) + " |")
    return lines, adjusted


def paired_rows(differences: dict, reference: str) -> list[dict]:
    return [{"trainer": t, "reference": reference, "subset": s, "region": r, "difference": round(d.mean, 6),
             "ci_low": round(d.ci_low, 6), "ci_high": round(d.ci_high, 6), "p_value": d.p_value,
             "cases": d.n_cases, "folds": d.n_folds, "per_fold": per_fold_text(d)}
            for t, per in differences.items() for (s, r), d in per.items()]
