"""Paired statistics on hand-made per-case tables."""
import numpy as np
import pytest

from nnunetv2_mtg import report
from nnunetv2_mtg.statistics import MEAN, dice_table, fold_means, paired_difference, spread


def _rows(dice_by_case, folds=(0,), subsets=("T2", "T1+T1ce+T2+FLAIR"), regions=("WT", "TC", "ET"), shift=0.0):
    return [{"case": f"c{k}", "fold": str(f), "subset": s, "region": r, "dice": str(d + shift + 0.01 * f), "hd95": "1"}
            for k, d in enumerate(dice_by_case) for f in folds for s in subsets for r in regions]


def test_known_shift_gives_the_difference_and_a_ci_without_zero():
    rng = np.random.default_rng(0)
    base = rng.uniform(0.5, 0.8, 16)
    noise = rng.normal(0, 0.01, 16)
    ref = dice_table(_rows(base, folds=(0, 1, 2)))
    better = dice_table(_rows(base + noise, folds=(0, 1, 2), shift=0.05))
    d = paired_difference(better, ref, MEAN, MEAN)
    assert d.mean == pytest.approx(0.05 + noise.mean(), abs=1e-9)
    assert 0 < d.ci_low < d.mean < d.ci_high and d.p_value < 0.001
    assert (d.n_cases, d.n_folds) == (16, 3)
    per_subset = paired_difference(better, ref, "T2", "ET")
    assert per_subset.mean == pytest.approx(d.mean)


def test_identical_trainers_give_zero_inside_the_ci():
    base = np.linspace(0.4, 0.9, 10)
    a, b = dice_table(_rows(base)), dice_table(_rows(base))
    d = paired_difference(a, b, MEAN, MEAN)
    assert d.mean == 0 and d.ci_low <= 0 <= d.ci_high and d.p_value == 1.0


def test_noise_without_shift_has_a_ci_around_zero():
    rng = np.random.default_rng(1)
    base = rng.uniform(0.5, 0.8, 40)
    a = dice_table(_rows(base + rng.normal(0, 0.02, 40)))
    b = dice_table(_rows(base))
    d = paired_difference(a, b, MEAN, MEAN)
    assert d.ci_low < 0 < d.ci_high and d.p_value > 0.05


def test_table_means_folds_and_spread():
    t = dice_table(_rows([0.5, 0.7], folds=(0, 1)))
    # fold 1 adds 0.01 to every value; MEAN over regions and subsets of case means
    assert fold_means(t) == pytest.approx({"0": 0.6, "1": 0.61})
    assert t[("c0", "0", MEAN, "WT")] == pytest.approx(0.5)
    assert spread([0.6, 0.61]) == pytest.approx(np.std([0.6, 0.61], ddof=1)) and np.isnan(spread([0.6]))


def test_label_based_mean_uses_the_brats_regions_only():
    rows = [{"case": "c", "fold": "0", "subset": "T2", "region": r, "dice": str(v), "hd95": "0"}
            for r, v in (("WT", 0.9), ("TC", 0.6), ("ET", 0.3), ("label SNFH", 0.0))]
    assert dice_table(rows)[("c", "0", "T2", MEAN)] == pytest.approx(0.6)


def test_paired_tables_markdown():
    base = np.linspace(0.4, 0.9, 8)
    tables = {"A": dice_table(_rows(base)), "B": dice_table(_rows(base, shift=0.1))}
    diffs = {"B": {(s, r): paired_difference(tables["B"], tables["A"], s, r)
                   for s in ("T2", "T1+T1ce+T2+FLAIR", MEAN) for r in ("WT", "TC", "ET", MEAN)}}
    md = report.paired_tables(diffs, "A", ["WT", "TC", "ET"])
    assert "| **mean** | +10.00 [+10.00, +10.00] |" in md and "Δ B [95% CI]" in md
    rows = report.paired_rows(diffs, "A")
    assert len(rows) == 12 and {r["trainer"] for r in rows} == {"B"}
