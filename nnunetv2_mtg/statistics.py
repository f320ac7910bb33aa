"""Paired comparisons of trainers on the same cases: mean difference, bootstrap CI, Wilcoxon signed-rank test.

Units are cases; several folds (nnU-Net's folds used as repeats of the training) evaluated on the same cases
are pooled as case x fold. Two sources of variance: the cases, and the training runs (a fold's model is one
draw of the training). The confidence interval is a two-level bootstrap that resamples both: the folds with
replacement and, independently, the cases with replacement (test cases are shared by the folds, so the two
are crossed), each resample's difference the mean over the drawn case x fold cells that exist. With one fold
it is the bootstrap over cases alone, and the run-to-run variance is not in it (say so). The per-fold mean
differences are kept beside it. The Wilcoxon test (scipy) runs on each case's difference averaged over the
folds. A verdict of better or worse needs both: the CI excludes 0 and the Holm-corrected p (over the
comparisons of one table) is below 0.05.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

MEAN = "mean"  # the row of the mean over subsets, and the column of the mean over regions


@dataclass(frozen=True)
class PairedDifference:
    mean: float  # mean of (trainer - reference) over cases (x folds)
    ci_low: float
    ci_high: float
    p_value: float  # two-sided Wilcoxon signed-rank over cases
    n_cases: int
    n_folds: int
    per_fold: tuple[tuple[str, float], ...] = ()  # (fold, mean difference over that fold's cases)


def dice_table(rows: list[dict], fold=None) -> dict[tuple, float]:
    """{(case, fold, subset, region): dice} from per-case rows (evaluate's per_case.csv), with the region MEAN
    (per case and subset, over WT/TC/ET where the dataset has them) and the subset MEAN (per case and region, over
    the subsets present) added."""
    from nnunetv2_mtg.metrics import mean_regions

    table = {}
    for r in rows:
        table[(r["case"], r.get("fold", fold), r["subset"], r["region"])] = float(r["dice"])
    keys = list(table)
    regions = sorted({k[3] for k in keys})
    subsets = sorted({k[2] for k in keys})
    units = sorted({k[:2] for k in keys}, key=str)
    for case, f in units:
        for s in subsets:
            table[(case, f, s, MEAN)] = float(np.mean([table[(case, f, s, r)] for r in mean_regions(regions)]))
        for r in regions + [MEAN]:
            table[(case, f, MEAN, r)] = float(np.mean([table[(case, f, s, r)] for s in subsets]))
    return table


def paired_difference(trainer: dict[tuple, float], reference: dict[tuple, float], subset: str, region: str,
                      n_resamples: int = 5000, seed: int = 0) -> PairedDifference:
    """trainer minus reference on the cases (x folds) both have, for one subset (or MEAN) and region (or MEAN)."""
    from scipy.stats import wilcoxon

    units = sorted({k[:2] for k in reference if k[2] == subset and k[3] == region} &
                   {k[:2] for k in trainer if k[2] == subset and k[3] == region}, key=str)
    if not units:
        raise ValueError(f"no common cases for subset {subset}, region {region}")
    cases = sorted({c for c, _ in units})
    folds = sorted({f for _, f in units}, key=str)
    diff = {u: trainer[(*u, subset, region)] - reference[(*u, subset, region)] for u in units}
    matrix = np.full((len(cases), len(folds)), np.nan)
    for (c, f), d in diff.items():
        matrix[cases.index(c), folds.index(f)] = d
    case_means = np.nanmean(matrix, axis=1)
    mean = float(np.mean(list(diff.values())))
    low, high = hierarchical_bootstrap_ci(matrix, n_resamples, seed)
    if np.all(case_means == 0):
        p = 1.0
    else:
        p = float(wilcoxon(case_means, zero_method="wilcox").pvalue) if len(cases) > 1 else float("nan")
    per_fold = tuple((str(f), float(np.nanmean(matrix[:, k]))) for k, f in enumerate(folds))
    return PairedDifference(mean, low, high, p, len(cases), len(folds), per_fold)


def hierarchical_bootstrap_ci(matrix: np.ndarray, n_resamples: int = 5000, seed: int = 0,
                              level: float = 0.95) -> tuple[float, float]:
    """Percentile CI of the mean of a (cases x folds) matrix of differences (nan = that case was not evaluated in
    that fold), resampling folds and cases independently with replacement."""
    valid = ~np.isnan(matrix)
    values = np.where(valid, matrix, 0.0)
    n_cases, n_folds = matrix.shape
    if n_cases < 2 and n_folds < 2:
        return float(np.nanmean(matrix)), float(np.nanmean(matrix))
    rng = np.random.default_rng(seed)
    # how often each case (fold) is drawn in each resample: n draws with replacement = multinomial counts
    case_w = rng.multinomial(n_cases, np.full(n_cases, 1 / n_cases), size=n_resamples)
    fold_w = rng.multinomial(n_folds, np.full(n_folds, 1 / n_folds), size=n_resamples)
    sums = np.einsum("bc,cf,bf->b", case_w, values, fold_w)
    counts = np.einsum("bc,cf,bf->b", case_w, valid.astype(float), fold_w)
    stats = sums[counts > 0] / counts[counts > 0]
    tail = (1 - level) / 2 * 100
    low, high = np.percentile(stats, [tail, 100 - tail])
    return float(low), float(high)


def holm(p_values: list[float]) -> list[float]:
    """Holm-Bonferroni adjusted p-values (step-down, monotone, capped at 1); nan stays nan."""
    p = np.asarray(p_values, dtype=float)
    finite = np.flatnonzero(~np.isnan(p))
    order = finite[np.argsort(p[finite])]
    adjusted = np.full_like(p, np.nan)
    running = 0.0
    for rank, i in enumerate(order):
        running = max(running, (len(order) - rank) * p[i])
        adjusted[i] = min(1.0, running)
    return adjusted.tolist()


def verdict(d: PairedDifference, p_adjusted: float, alpha: float = 0.05) -> str:
    """better / worse only when the CI excludes 0 and the adjusted p is below alpha; otherwise not shown."""
    if d.ci_low > 0 and p_adjusted < alpha:
        return "better"
    if d.ci_high < 0 and p_adjusted < alpha:
        return "worse"
    return "no difference shown"


def fold_means(table: dict[tuple, float], subset: str = MEAN, region: str = MEAN) -> dict:
    """{fold: mean Dice over cases} for one subset (or MEAN) and region (or MEAN)."""
    folds = sorted({k[1] for k in table}, key=str)
    return {f: float(np.mean([v for k, v in table.items() if k[1] == f and k[2] == subset and k[3] == region]))
            for f in folds}


def full_input(table: dict[tuple, float]) -> str:
    """The subset of a dice table that has every modality the table's subsets name (subset names join modalities
    with "+", as evaluate writes them)."""
    subsets = {k[2] for k in table if k[2] != MEAN}
    every = set().union(*(s.split("+") for s in subsets))
    full = [s for s in subsets if set(s.split("+")) == every]
    if not full:
        raise ValueError(f"no subset with all of {sorted(every)} in the table")
    return full[0]


def spread(values: list[float]) -> float:
    """Sample standard deviation (ddof 1) of per-fold means; nan with fewer than two folds."""
    return float(np.std(values, ddof=1)) if len(values) > 1 else float("nan")
