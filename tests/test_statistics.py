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
    assert md.rstrip().endswith("| +10.0 | 0.0078 | better |")  # per fold, Holm p (one trainer), verdict
    rows = report.paired_rows(diffs, "A")
    assert len(rows) == 12 and {r["trainer"] for r in rows} == {"B"}


def _fold_effect_rows(base, effects, subsets=("T2",)):
    """Per-case rows where each fold adds its own offset: the difference between two trainers then varies mostly
    between folds (training runs), not between cases."""
    return [{"case": f"c{k}", "fold": str(f), "subset": s, "region": r, "dice": str(d + e), "hd95": "1"}
            for k, d in enumerate(base) for f, e in enumerate(effects) for s in subsets for r in ("WT", "TC", "ET")]


def test_fold_variance_widens_the_interval():
    """Three folds whose differences are +6, -2 and +2 points with little case noise: a bootstrap over cases alone
    would give a tight CI around +2; resampling the folds too must carry the run-to-run spread."""
    rng = np.random.default_rng(0)
    base = rng.uniform(0.5, 0.8, 20)
    ref = dice_table(_fold_effect_rows(base, (0, 0, 0)))
    trainer = dice_table(_fold_effect_rows(base + rng.normal(0, 0.005, 20), (0.06, -0.02, 0.02)))
    d = paired_difference(trainer, ref, MEAN, MEAN)
    assert d.mean == pytest.approx(0.02, abs=0.003)
    assert dict(d.per_fold) == pytest.approx({"0": 0.06, "1": -0.02, "2": 0.02}, abs=0.003)
    assert d.ci_high - d.ci_low > 0.04  # the folds' spread, not the cases' (which alone gives < 0.01)
    assert d.ci_low < 0 < d.ci_high
    one_fold = paired_difference(dice_table([r for r in _fold_effect_rows(base + 0.0, (0.02,))]),
                                 dice_table(_fold_effect_rows(base, (0,))), MEAN, MEAN)
    assert one_fold.ci_high - one_fold.ci_low < 0.01


def test_unequal_folds_and_partial_case_overlap_use_the_common_cells():
    rng = np.random.default_rng(2)
    base = rng.uniform(0.5, 0.8, 12)
    trainer_rows = _rows(base, folds=(0, 1, 2), shift=0.03)
    for r in trainer_rows:  # cells without a reference must not count: make them stand out
        if r["fold"] == "2" or (r["case"] in ("c0", "c1") and r["fold"] == "1"):
            r["dice"] = str(float(r["dice"]) + 0.5)
    ref_rows = [r for r in _rows(base, folds=(0, 1)) if not (r["case"] in ("c0", "c1") and r["fold"] == "1")]
    d = paired_difference(dice_table(trainer_rows), dice_table(ref_rows), MEAN, MEAN)
    assert (d.n_cases, d.n_folds) == (12, 2)  # fold 2 has no reference; c0, c1 only in fold 0
    assert d.mean == pytest.approx(0.03) and dict(d.per_fold) == pytest.approx({"0": 0.03, "1": 0.03})
    assert d.ci_low == pytest.approx(0.03) and d.ci_high == pytest.approx(0.03)


def test_p_value_is_scipys_wilcoxon_on_case_means():
    from scipy.stats import wilcoxon

    rng = np.random.default_rng(3)
    base = rng.uniform(0.5, 0.8, 15)
    noise = rng.normal(0.01, 0.02, (15, 2))
    a_rows = [{**r, "dice": str(float(r["dice"]) + noise[int(r["case"][1:]), int(r["fold"])])}
              for r in _rows(base, folds=(0, 1))]
    d = paired_difference(dice_table(a_rows), dice_table(_rows(base, folds=(0, 1))), MEAN, MEAN)
    assert d.p_value == pytest.approx(wilcoxon(noise.mean(1)).pvalue, rel=1e-9)


def test_holm_and_verdict():
    from nnunetv2_mtg.statistics import PairedDifference, holm, verdict

    # sorted 0.01, 0.02, 0.04 -> 3 * 0.01, max(0.03, 2 * 0.02), max(0.04, 1 * 0.04); nan kept
    assert holm([0.04, 0.01, float("nan"), 0.02]) == pytest.approx([0.04, 0.03, float("nan"), 0.04], nan_ok=True)
    assert holm([0.5, 0.6]) == pytest.approx([1.0, 1.0])
    up = PairedDifference(0.02, 0.01, 0.03, 0.01, 16, 3)
    assert verdict(up, 0.01) == "better" and verdict(up, 0.2) == "no difference shown"
    assert verdict(PairedDifference(-0.02, -0.03, -0.01, 0.01, 16, 3), 0.03) == "worse"
    assert verdict(PairedDifference(0.02, -0.01, 0.05, 0.001, 16, 3), 0.001) == "no difference shown"


def test_full_input_is_the_subset_with_every_modality():
    """Named by its modalities, not by its length: a table in another naming, or with only some subsets, still gives
    the full input; a table without it is refused."""
    from nnunetv2_mtg.statistics import full_input

    def table(*subsets):
        return dice_table([{"case": "c", "fold": 0, "subset": s, "region": "WT", "dice": 0.5} for s in subsets])

    assert full_input(table("T1+T2", "T1+T1ce+T2+FLAIR", "FLAIR", "T1ce+T2+FLAIR")) == "T1+T1ce+T2+FLAIR"
    assert full_input(table("t2f", "t1n+t1c+t2w+t2f", "t1c+t2w")) == "t1n+t1c+t2w+t2f"
    with pytest.raises(ValueError, match="no subset with all of"):
        full_input(table("T1+T2", "T1ce+FLAIR"))
