"""benchmarks/grid_summary.py: the summary tables written into marked blocks from the reports' CSVs."""
import csv
import os
import sys

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(ROOT, "benchmarks"))
import grid_summary  # noqa: E402
from accuracy_report import SUMMARY_FIELDS  # noqa: E402
from lineup import DEFAULT_TEACHER, DROPOUT, NOALIGN, PROTOKD, STOCK  # noqa: E402

PAIRED = ("comparison", "trainer", "reference", "subset", "region", "difference", "ci_low", "ci_high", "p_value",
          "cases", "folds", "per_fold", "holm_p")
FULL = "T1+T1ce+T2+FLAIR"


def _paired(trainer, reference, diff, low, high, holm, subset="mean", region="mean", per_fold="0:0.1 1:0.2"):
    return {"comparison": "c", "trainer": trainer, "reference": reference, "subset": subset, "region": region,
            "difference": diff, "ci_low": low, "ci_high": high, "p_value": 0.001, "cases": 16, "folds": 2,
            "per_fold": per_fold, "holm_p": holm}


def _summary(trainer, sub, full, per_fold, full_per_fold, region="mean"):
    return {"trainer": trainer, "folds": "0 1", "region": region, "mean_dice_15_subsets": sub, "sd_over_folds": 0,
            "full_input_dice": full, "full_input_sd_over_folds": 0, "per_fold_mean_dice": per_fold,
            "per_fold_full_input_dice": full_per_fold}


def _write(folder, paired, summary):
    os.makedirs(folder / "accuracy")
    for name, fields, rows in (("paired.csv", PAIRED, paired), ("summary.csv", SUMMARY_FIELDS, summary)):
        with open(folder / "accuracy" / name, "w", newline="") as f:
            w = csv.DictWriter(f, fieldnames=fields)
            w.writeheader()
            w.writerows(rows)


@pytest.fixture
def reports(tmp_path):
    main, forms = tmp_path / "main", tmp_path / "forms"
    _write(main, [_paired(STOCK, DROPOUT, -0.5, -0.55, -0.47, 1e-5, per_fold="0:-0.52 1:-0.48"),
                  _paired(STOCK, DROPOUT, -0.9, -0.95, -0.85, 1e-5, region="WT"),  # a region row: not the mean
                  _paired(DROPOUT, STOCK, -0.018, -0.032, -0.007, 0.0002, subset=FULL),
                  _paired(DEFAULT_TEACHER, NOALIGN, 0.02, 0.005, 0.03, 0.2)],  # CI excludes 0, Holm p does not
           [_summary(STOCK, 0.34075, 0.9687, "0.32311 0.35839", "0.97 0.9674"),
            _summary(STOCK, 0.1, 0.1, "0.1 0.1", "0.1 0.1", region="WT")])
    _write(forms, [_paired(DEFAULT_TEACHER, NOALIGN, -0.3, -0.4, -0.2, 1e-5),  # the main report's row wins
                   _paired(DEFAULT_TEACHER + "Mixture", DEFAULT_TEACHER, -0.013, -0.026, -0.001, 0.0006)],
           [_summary(STOCK, 0.5, 0.5, "0.5 0.5", "0.5 0.5"),
            _summary(PROTOKD, 0.85762, 0.93857, "0.86672 0.84851", "0.96556 0.91158")])
    return [str(main), str(forms)]


def test_comparisons_negate_reversed_pairs_keep_full_input_apart_and_take_the_first_report(reports):
    rows = grid_summary.comparison_table(reports).splitlines()[2:]
    assert rows == [
        "| dropout minus stock | +50.0 [+47.0, +55.0] | +52.0 / +48.0 | <1e-4 | better |",
        "| full input: dropout minus stock | −1.8 [−3.2, −0.7] | +10.0 / +20.0 | 0.0002 | worse |",
        "| alignment: default teacher minus NoAlign | +2.0 [+0.5, +3.0] | +10.0 / +20.0 | 0.2 | no difference shown |",
        "| scale-invariant mixture teacher minus the default | −1.3 [−2.6, −0.1] | +10.0 / +20.0 | 0.0006 | worse |",
    ]


def test_trainer_table_has_the_folds_and_per_fold_values_of_the_mean_region(reports):
    rows = grid_summary.trainer_table(reports).splitlines()[2:]
    assert rows == [
        "| stock `nnUNetTrainer` | 0, 1 | 34.1 (32.3 / 35.8) | 96.9 (97.0 / 96.7) |",
        f"| {grid_summary.TRAINERS[PROTOKD]} | 0, 1 | 85.8 (86.7 / 84.9) | 93.9 (96.6 / 91.2) |",
    ]


def test_blocks_are_rewritten_in_place_and_the_text_around_them_kept(reports, tmp_path):
    doc = tmp_path / "doc.md"
    doc.write_text("# T\n\n<!-- grid-summary:trainers -->\nSTALE\n<!-- /grid-summary -->\nmiddle\n"
                   "<!-- grid-summary:comparisons -->\n<!-- /grid-summary -->\nend\n")
    args = ["--results", *reports, "--into", str(doc)]
    grid_summary.main(args)
    once = doc.read_text()
    assert "STALE" not in once and once.startswith("# T\n\n<!-- grid-summary:trainers -->\n| nnU-Net trainer")
    assert "| 0, 1 | 34.1" in once and "\nmiddle\n" in once and "| dropout minus stock | +50.0" in once
    assert once.endswith("<!-- /grid-summary -->\nend\n")
    grid_summary.main(args)
    assert doc.read_text() == once


@pytest.mark.parametrize("bad, message", [
    ("no block here\n", "has no grid-summary block"),
    ("<!-- grid-summary:typo -->\n<!-- /grid-summary -->\n", "unknown block `grid-summary:typo`"),
])
def test_a_bad_file_is_refused_before_any_file_is_written(reports, tmp_path, bad, message):
    good, wrong = tmp_path / "good.md", tmp_path / "bad.md"
    good.write_text("<!-- grid-summary:trainers -->\nold\n<!-- /grid-summary -->\n")
    wrong.write_text(bad)
    with pytest.raises(SystemExit, match=message):
        grid_summary.main(["--results", *reports, "--into", str(good), str(wrong)])
    assert good.read_text() == "<!-- grid-summary:trainers -->\nold\n<!-- /grid-summary -->\n"
    assert wrong.read_text() == bad


def test_a_results_folder_without_the_reports_csvs_is_refused(reports, tmp_path):
    doc = tmp_path / "doc.md"
    doc.write_text("<!-- grid-summary:trainers -->\n<!-- /grid-summary -->\n")
    with pytest.raises(SystemExit, match="has no accuracy/summary.csv.*--report-only"):
        grid_summary.main(["--results", reports[0], str(tmp_path), "--into", str(doc)])
    assert doc.read_text() == "<!-- grid-summary:trainers -->\n<!-- /grid-summary -->\n"


def test_the_committed_readme_and_results_hold_the_tables_of_the_committed_reports():
    results = [os.path.join(ROOT, "docs", "accuracy_2d"), os.path.join(ROOT, "docs", "accuracy_2d", "forms")]
    blocks = grid_summary.blocks(results)
    for name in ("README.md", os.path.join("docs", "RESULTS.md")):
        with open(os.path.join(ROOT, name)) as f:
            text = f.read()
        assert grid_summary.fill(text, blocks, name) == text, \
            f"{name} is stale: run python benchmarks/grid_summary.py (the command in docs/RESULTS.md)"
