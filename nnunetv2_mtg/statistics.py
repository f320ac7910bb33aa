"""Paired comparisons of trainers on the same cases: mean difference, bootstrap CI, Wilcoxon signed-rank test.

Units are cases; several folds (nnU-Net's folds used as repeats of the training) evaluated on the same cases
are pooled as case x fold. The confidence interval resamples cases with all their folds (a cluster
bootstrap: a case seen by three models is not three independent cases), and the Wilcoxon test runs on each
case's difference averaged over the folds, so that both treat cases, not case x fold pairs, as independent.
Both come from scipy (`scipy.stats.bootstrap`, `scipy.stats.wilcoxon`).
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
    from scipy.stats import bootstrap, wilcoxon

    units = sorted({k[:2] for k in reference if k[2] == subset and k[3] == region} &
                   {k[:2] for k in trainer if k[2] == subset and k[3] == region}, key=str)
    if not units:
        raise ValueError(f"no common cases for subset {subset}, region {region}")
    cases = sorted({c for c, _ in units})
    folds = sorted({f for _, f in units}, key=str)
    diff = {u: trainer[(*u, subset, region)] - reference[(*u, subset, region)] for u in units}
    per_case = [[d for (c, _), d in diff.items() if c == case] for case in cases]
    case_means = np.array([np.mean(v) for v in per_case])
    mean = float(np.mean(list(diff.values())))
    if len(cases) < 2 or np.all(case_means == case_means[0]):
        low = high = float(case_means[0]) if np.all(case_means == case_means[0]) else float("nan")
    else:
        sums = np.array([np.sum(v) for v in per_case])
        counts = np.array([len(v) for v in per_case], dtype=float)
        ci = bootstrap((np.arange(len(cases)),), lambda idx, axis=-1: sums[idx].sum(axis) / counts[idx].sum(axis),
                       confidence_level=0.95, n_resamples=n_resamples, method="percentile", vectorized=True,
                       rng=np.random.default_rng(seed)).confidence_interval
        low, high = float(ci.low), float(ci.high)
    if np.all(case_means == 0):
        p = 1.0
    else:
        p = float(wilcoxon(case_means, zero_method="wilcox").pvalue) if len(cases) > 1 else float("nan")
    return PairedDifference(mean, low, high, p, len(cases), len(folds))


def fold_means(table: dict[tuple, float], subset: str = MEAN, region: str = MEAN) -> dict:
    """{fold: mean Dice over cases} for one subset (or MEAN) and region (or MEAN)."""
    folds = sorted({k[1] for k in table}, key=str)
    return {f: float(np.mean([v for k, v in table.items() if k[1] == f and k[2] == subset and k[3] == region]))
            for f in folds}


def spread(values: list[float]) -> float:
    """Sample standard deviation (ddof 1) of per-fold means; nan with fewer than two folds."""
    return float(np.std(values, ddof=1)) if len(values) > 1 else float("nan")
