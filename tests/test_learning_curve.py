"""benchmarks/learning_curve.py: the converged budget it reports, and --extend keeping the earlier budgets' rows."""
import os
import sys
from types import SimpleNamespace

import pytest

sys.path.insert(0, os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "benchmarks"))
import learning_curve  # noqa: E402


def _rows(points):
    return [{"trainer": t, "iterations": b, "mean_dice_15_subsets": m, "full_input_dice": f, "training_minutes": 1.0}
            for t, b, m, f in points]


def test_converged_budget_is_the_smallest_within_tolerance_of_the_largest_for_every_trainer_and_figure():
    rows = _rows([("A", 1000, 70, 90), ("A", 2000, 79.5, 95.2), ("A", 4000, 80, 96),
                  ("B", 1000, 60, 96), ("B", 2000, 60, 94.9), ("B", 4000, 60, 96)])
    # A's figures are within 1 point at 2000, but B's full input is 1.1 below its 4000 there
    assert learning_curve.converged_budget(rows, 1.0) == 4000
    assert learning_curve.converged_budget(rows, 1.2) == 2000
    assert learning_curve.converged_budget(rows, 100) == 1000
    assert learning_curve.converged_budget(rows[:1] + rows[3:4], 1.0) is None


def test_extend_keeps_the_earlier_budgets_and_their_command(tmp_path):
    a = SimpleNamespace(results=str(tmp_path), tolerance=1.0)
    learning_curve.write(a, _rows([("A", 1000, 70, 90), ("A", 2000, 80, 96)]), ["first run"], [])
    rows, commands = learning_curve.earlier(str(tmp_path), [2000, 4000])
    assert [(r["trainer"], int(r["iterations"])) for r in rows] == [("A", 1000)]
    assert commands == ["first run"]
    learning_curve.write(a, rows + _rows([("A", 4000, 81, 96.5)]), commands + ["second run"], [])
    md = (tmp_path / "learning_curve.md").read_text()
    assert "- command: `first run`" in md and "- command: `second run`" in md
    assert "**4000** iterations" in md and "| 1000 |" in md and "| 2000 |" not in md


def test_extend_without_a_table_is_refused_before_anything_is_trained(tmp_path, capsys):
    with pytest.raises(SystemExit):
        learning_curve.parse(["--extend", "--results", str(tmp_path)])
    assert "run without --extend first" in capsys.readouterr().err
    assert not os.listdir(tmp_path)
