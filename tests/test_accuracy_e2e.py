"""benchmarks/accuracy.py end to end on a tiny budget: files and table structure, and that a second run resumes."""
import csv
import os
import subprocess

from conftest import BIN

from nnunetv2_mtg.report import PER_CASE_FIELDS, read_csv, write_csv_atomic

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _run(env, ws, results, *extra, ok=True):
    args = [os.path.join(BIN, "python"), os.path.join(REPO, "benchmarks", "accuracy.py"), "-d", "950",
            "--iterations", "10", "--folds", "0", "--trainers", "nnUNetTrainer", "nnUNetTrainerModalityDropout",
            "--workspace", str(ws), "--results", str(results), *extra]
    proc = subprocess.run(args, env=env, capture_output=True, text=True, timeout=1200)
    assert (proc.returncode == 0) == ok, proc.stdout[-3000:] + proc.stderr[-3000:]
    return proc.stdout if ok else proc.stdout + proc.stderr


def test_accuracy_experiment_tiny(nnunet_env, phantom, tmp_path):
    ws, results = tmp_path / "ws", tmp_path / "docs"
    out = _run(nnunet_env, ws, results, "--evaluate-each")
    assert "[1/2] training nnUNetTrainer_10iters fold 0" in out and "[2/2] training" in out
    # each model evaluated as it landed, its table written; the final evaluation found them in its cache
    assert out.index("nnUNetTrainer fold 0 evaluated: ") < out.index("[2/2] training")
    assert "trainings left, about" in out  # the time estimate after the first training
    md = (results / "RESULTS.md").read_text()
    for heading in ("## Mean Dice over the 15 modality subsets", "## Paired differences",
                    "## Modality gap and bypass check of the teachers"):
        assert heading in md
    assert "- budget: 10 training iterations per model" in md and "- command: `python benchmarks/accuracy.py -d 950" in md
    assert "- evaluated on: " in md and "- trained on: cpu, torch " in md and "(2 models)" in md
    assert "- wall time: " in md and " h over 1 run(s) of the command:" in md and "  1. `python benchmarks/accuracy.py" in md
    assert "| nnUNetTrainer | 0 |" in md and "| nnUNetTrainerModalityDropout | 0 |" in md
    assert "### Teachers against modality dropout" in md and "| nnUNetTrainer | " in md
    assert "### Full input only, against stock nnU-Net" in md  # dropout's full-input Dice against stock
    # where they differ, as a picture beside the report: Dice per subset of each, and stock minus dropout
    assert "![teachers](accuracy/teachers_per_subset.png)" in md and "![students]" not in md  # no students here
    assert (results / "accuracy" / "teachers_per_subset.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    with open(results / "accuracy" / "summary.csv") as f:
        summary = list(csv.DictReader(f))
    assert {(r["trainer"], r["region"]) for r in summary} == {(t, r) for t in ("nnUNetTrainer",
                                                                            "nnUNetTrainerModalityDropout")
                                                            for r in ("WT", "TC", "ET", "mean")}
    with open(results / "accuracy" / "paired.csv") as f:
        paired = list(csv.DictReader(f))
    assert len(paired) == 2 * 4 and all(float(r["ci_low"]) <= float(r["difference"]) <= float(r["ci_high"])
                                        for r in paired)
    assert {(r["trainer"], r["reference"], r["subset"]) for r in paired} == {
        ("nnUNetTrainer", "nnUNetTrainerModalityDropout", "mean"),
        ("nnUNetTrainerModalityDropout", "nnUNetTrainer", "T1+T1ce+T2+FLAIR")}
    with open(results / "accuracy" / "gap.csv") as f:
        gap = list(csv.DictReader(f))
    assert {r["table"] for r in gap} == {"bypass", "gap"} and {r["representation"] for r in gap} >= {"stage 0"}

    for t in ("nnUNetTrainer", "nnUNetTrainerModalityDropout"):  # the per-case tables travel with the report
        kept = read_csv(str(results / "accuracy" / "per_case" / f"{t}.csv.gz"))
        evaluated = read_csv(str(ws / "evaluation" / "teachers" / f"{t}_10iters" / "per_case.csv"))
        assert sorted(map(tuple, map(dict.values, kept))) == sorted(map(tuple, map(dict.values, evaluated)))
        assert len(kept) == 2 * 15 * 3  # cases x subsets x regions

    again = _run(nnunet_env, ws, results)  # everything is there: nothing is trained again
    assert "training" not in again and "results in" in again
    assert " h over 2 run(s) of the command:" in (results / "RESULTS.md").read_text()  # each run on its machine

    # a lost workspace: a new one with the committed tables trains and evaluates nothing, and reports the same numbers
    tables = results / "accuracy" / "per_case"
    reused = _run(nnunet_env, tmp_path / "ws2", tmp_path / "docs2", "--tables", str(tables))
    assert "reusing 2 model-fold(s)" in reused and "] training " not in reused and " evaluating " not in reused
    for name in ("summary.csv", "paired.csv", "per_case/nnUNetTrainer.csv.gz"):
        assert (tmp_path / "docs2" / "accuracy" / name).read_bytes() == (results / "accuracy" / name).read_bytes()
    assert "- reused from `" in (tmp_path / "docs2" / "RESULTS.md").read_text()

    # tables of another budget, or lacking a test case, are refused before anything is written
    other = _run(nnunet_env, tmp_path / "ws3", tmp_path / "docs3", "--tables", str(tables), "--iterations", "20",
                 ok=False)
    assert "reuse tables only with the same data, plans and --iterations" in other and "] training " not in other
    bad = tmp_path / "bad"
    bad.mkdir()
    (bad / "run.json").write_bytes((tables / "run.json").read_bytes())
    rows = read_csv(str(tables / "nnUNetTrainer.csv.gz"))
    write_csv_atomic(str(bad / "nnUNetTrainer.csv.gz"), PER_CASE_FIELDS,
                     [r for r in rows if r["case"] != rows[0]["case"]])
    refused = _run(nnunet_env, tmp_path / "ws3", tmp_path / "docs3", "--tables", str(bad), ok=False)
    assert "is not a table of this run's test cases" in refused and "] training " not in refused
    assert not (tmp_path / "docs3").exists()

    # a grid's state so far: RESULTS.md from the tables alone, the trainers they hold and nothing trained
    part = tmp_path / "part"
    part.mkdir()
    for name in ("run.json", "nnUNetTrainer.csv.gz"):
        (part / name).write_bytes((tables / name).read_bytes())
    so_far = _run(nnunet_env, tmp_path / "ws2", tmp_path / "docs4", "--tables", str(part), "--report-only")
    assert "reusing 1 model-fold(s)" in so_far and "] training " not in so_far and " evaluating " not in so_far
    md = (tmp_path / "docs4" / "RESULTS.md").read_text()
    assert "| nnUNetTrainer | 0 |" in md and "| nnUNetTrainerModalityDropout |" not in md
    assert "- trained on: the run(s) that wrote --tables" in md
    assert " h over 1 run(s) of the command:" in md  # its own command, not the workspace's earlier run
    assert "--report-only reports" in _run(nnunet_env, tmp_path / "ws2", tmp_path / "docs4", "--report-only", ok=False)

    # a report over fewer folds than its per_case/ holds (a resumed grid reporting fold 0 where folds 0-1 are done)
    # keeps the other folds' rows: per_case/ is where the grid finds its finished models
    grid = tmp_path / "docs5" / "accuracy" / "per_case"
    grid.mkdir(parents=True)
    (grid / "run.json").write_bytes((tables / "run.json").read_bytes())
    both = rows + [{**r, "fold": "1", "dice": "0.25"} for r in rows]
    write_csv_atomic(str(grid / "nnUNetTrainer.csv.gz"), PER_CASE_FIELDS, both)
    _run(nnunet_env, tmp_path / "ws2", tmp_path / "docs5", "--tables", str(grid), "--report-only")
    assert "| nnUNetTrainer | 0 |" in (tmp_path / "docs5" / "RESULTS.md").read_text()
    assert read_csv(str(grid / "nnUNetTrainer.csv.gz")) == both
