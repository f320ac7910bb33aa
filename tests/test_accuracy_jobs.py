"""benchmarks/accuracy.py --jobs: trainings side by side, a student only once its teacher of the same fold is done."""
import os
import sys
import threading
import time

import pytest

sys.path.insert(0, os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "benchmarks"))
import accuracy  # noqa: E402
from lineup import teacher_of  # noqa: E402
from scheduling import to_train  # noqa: E402


def _experiment(tmp_path, monkeypatch, jobs):
    for name in ("nnUNet_raw", "nnUNet_preprocessed", "nnUNet_results", "nnUNet_extTrainer", "nnUNet_n_proc_DA"):
        monkeypatch.setenv(name, "")  # recorded, so the experiment's own settings are undone after the test
        monkeypatch.delenv(name)
    exp = accuracy.Experiment(accuracy.parse(["--jobs", str(jobs), "--workspace", str(tmp_path)]))
    done, log, lock = set(), [], threading.Lock()
    running = [0]

    def train(trainer, fold):
        if (trainer, fold) in exp.failing:
            raise SystemExit(f"failed (1): nnUNetv2_train ... {trainer}")
        with lock:
            running[0] += 1
            log.append(("start", trainer, fold, running[0]))
        time.sleep(0.05)
        with lock:
            running[0] -= 1
            done.add((trainer, fold))
            log.append(("end", trainer, fold, running[0]))

    exp.failing = set()
    monkeypatch.setattr(exp, "train", train)
    monkeypatch.setattr(exp, "trained", lambda t, f: (t, f) in done)
    return exp, log, done


def test_students_wait_for_their_teacher_and_at_most_jobs_run(tmp_path, monkeypatch):
    exp, log, done = _experiment(tmp_path, monkeypatch, jobs=3)
    grid = [(t, f) for f in (0, 1) for t in accuracy.TEACHERS + accuracy.STUDENTS]
    exp.run_jobs(grid)
    assert done == set(grid)
    assert max(e[3] for e in log if e[0] == "start") == 3  # never more than --jobs at once
    ended = []
    for kind, trainer, fold, _ in log:
        if kind == "end":
            ended.append((trainer, fold))
        elif teacher_of(trainer):
            assert (teacher_of(trainer), fold) in ended, f"{trainer} fold {fold} started before its teacher"
    assert os.environ["nnUNet_n_proc_DA"] == str(max(1, min(os.cpu_count() or 2, 12) // 3))


def test_a_student_without_its_teacher_is_refused(tmp_path, monkeypatch):
    exp, _, done = _experiment(tmp_path, monkeypatch, jobs=1)
    with pytest.raises(SystemExit, match="teachers are not part of this run"):
        exp.run_jobs([("nnUNetTrainerKDStudent", 0), ("nnUNetTrainer", 0)])
    assert done == {("nnUNetTrainer", 0)}


def test_a_failed_training_leaves_out_only_its_students(tmp_path, monkeypatch):
    """A long grid goes on after one failure: everything else trains, the failed teacher's student of that fold is
    left out, and the run ends by naming both."""
    exp, _, done = _experiment(tmp_path, monkeypatch, jobs=2)
    exp.failing = {(accuracy.DROPOUT, 1)}
    grid = [(t, f) for f in (0, 1) for t in (accuracy.DROPOUT, accuracy.KD, accuracy.NOALIGN)]
    with pytest.raises(SystemExit) as e:
        exp.run_jobs(grid)
    assert done == set(grid) - {(accuracy.DROPOUT, 1), (accuracy.KD, 1)}
    message = str(e.value)
    assert f"{accuracy.DROPOUT} fold 1: failed (1)" in message
    assert f"{accuracy.KD} fold 1: its teacher {accuracy.DROPOUT} fold 1 failed" in message
    assert "run the same command again" in message


def test_variant_modules_of_an_earlier_run_are_kept(tmp_path):
    """Each trainer's `_<N>iters` class has a module of its own: a run with other trainers removes none."""
    accuracy.write_variants(str(tmp_path), [accuracy.DROPOUT, accuracy.KD], 10)
    accuracy.write_variants(str(tmp_path), [accuracy.STOCK], 10)
    assert sorted(os.listdir(tmp_path)) == sorted(f"{t}_10iters.py" for t in (accuracy.DROPOUT, accuracy.KD,
                                                                              accuracy.STOCK))
    namespace = {"__name__": "variants"}
    exec(open(tmp_path / f"{accuracy.KD}_10iters.py").read(), namespace)
    assert namespace[f"{accuracy.KD}_10iters"].iterations == 10


def test_jobs_run_fold_by_fold_in_the_given_order(tmp_path, monkeypatch):
    """The main comparisons can be listed first: at --jobs 1 the order of --trainers is kept within each fold, a
    student right after its teacher when listed so."""
    exp, log, _ = _experiment(tmp_path, monkeypatch, jobs=1)
    order = [accuracy.DROPOUT, "nnUNetTrainerMTGTeacherMixture", accuracy.KD, "nnUNetTrainerMTGStudentMixture",
             accuracy.STOCK]
    exp.run_jobs([(t, f) for f in (0, 1) for t in order])
    assert [(t, f) for kind, t, f, _ in log if kind == "start"] == [(t, f) for f in (0, 1) for t in order]


def test_the_lineup_is_read_from_the_forms_and_the_students_own_teachers():
    """The experiment's trainers come from nnunetv2_mtg.forms.FORMS and each student's `teacher_trainer`: the
    names its committed tables use, every student with its paired teacher, every class importable from its module."""
    import importlib

    import lineup

    forms = ["", "Bottleneck", "AllStages", "Mixture", "Gaussian", "Standin", "FirstBlock"]
    assert lineup.TEACHERS == ["nnUNetTrainer", "nnUNetTrainerModalityDropout", "nnUNetTrainerMTGTeacherNoAlign",
                               *[f"nnUNetTrainerMTGTeacher{f}" for f in forms]]
    assert lineup.STUDENTS == ["nnUNetTrainerKDStudent", "nnUNetTrainerProtoKDStudent",
                               *[f"nnUNetTrainerMTGStudent{f}" for f in forms]]
    teachers = {s: lineup.teacher_of(s) for s in lineup.STUDENTS}
    assert teachers == {"nnUNetTrainerKDStudent": "nnUNetTrainerModalityDropout",
                        "nnUNetTrainerProtoKDStudent": "nnUNetTrainerModalityDropout",
                        **{f"nnUNetTrainerMTGStudent{f}": f"nnUNetTrainerMTGTeacher{f}" for f in forms}}
    assert all(lineup.teacher_of(t) is None for t in lineup.TEACHERS)
    for t in lineup.TEACHERS + lineup.STUDENTS:
        assert getattr(importlib.import_module(lineup.module_of(t)), t) is lineup.trainer_class(t)
    assert lineup.module_of("nnUNetTrainer") == "nnunetv2.training.nnUNetTrainer.nnUNetTrainer"


def test_results_name_the_commit_or_say_unknown_without_git(monkeypatch):
    import accuracy_report

    assert accuracy_report._commit() != "unknown"  # this checkout has git
    monkeypatch.setenv("PATH", "")  # a machine (or a tarball's environment) without the git binary
    assert accuracy_report._commit() == "unknown"


def test_comparisons_pair_each_model_with_its_reference():
    """Every teacher against dropout, MTG forms against NoAlign and against the default stem, students against KD,
    MTG student forms against the default student, everything at full input against stock; a block whose reference
    is absent is left out."""
    from accuracy_report import comparisons

    from lineup import DEFAULT_TEACHER as default

    assert default == "nnUNetTrainerMTGTeacher"
    grid = ["nnUNetTrainer", "nnUNetTrainerModalityDropout", default, "nnUNetTrainerMTGTeacherNoAlign",
            "nnUNetTrainerMTGTeacherMixture", "nnUNetTrainerMTGTeacherFirstBlock", "nnUNetTrainerKDStudent",
            "nnUNetTrainerMTGStudent", "nnUNetTrainerMTGStudentFirstBlock", "nnUNetTrainerProtoKDStudent"]
    blocks = {ref: group for _, ref, group in comparisons(grid)}
    assert blocks["nnUNetTrainerModalityDropout"] == ["nnUNetTrainer", default, "nnUNetTrainerMTGTeacherNoAlign",
                                                     "nnUNetTrainerMTGTeacherMixture",
                                                     "nnUNetTrainerMTGTeacherFirstBlock"]
    assert blocks["nnUNetTrainerMTGTeacherNoAlign"] == [default, "nnUNetTrainerMTGTeacherMixture",
                                                       "nnUNetTrainerMTGTeacherFirstBlock"]
    assert blocks[default] == ["nnUNetTrainerMTGTeacherMixture", "nnUNetTrainerMTGTeacherFirstBlock"]
    assert blocks["nnUNetTrainerKDStudent"] == ["nnUNetTrainerMTGStudent", "nnUNetTrainerMTGStudentFirstBlock",
                                                "nnUNetTrainerProtoKDStudent"]
    assert blocks["nnUNetTrainerMTGStudent"] == ["nnUNetTrainerMTGStudentFirstBlock"]  # not ProtoKD, not KD
    assert blocks["nnUNetTrainer"] == grid[1:]
    without = {ref for _, ref, _ in comparisons([t for t in grid if t not in (default, "nnUNetTrainerMTGStudent")])}
    assert not {default, "nnUNetTrainerMTGStudent"} & without and "nnUNetTrainerMTGTeacherNoAlign" in without
    assert len(comparisons(grid)) == 6


def test_reused_model_folds_are_not_trained_but_still_teach():
    """--tables: a reused fold is skipped unless a student to be trained needs it as its teacher."""
    trainers = [accuracy.DROPOUT, accuracy.KD, accuracy.PROTOKD, accuracy.STOCK]
    reused = {(accuracy.DROPOUT, 0), (accuracy.KD, 0), (accuracy.STOCK, 0), (accuracy.DROPOUT, 1), (accuracy.KD, 1)}
    assert to_train(trainers, [0, 1], reused) == [
        (accuracy.DROPOUT, 0), (accuracy.PROTOKD, 0),  # ProtoKD fold 0 is new: its reused teacher is retrained
        (accuracy.DROPOUT, 1), (accuracy.PROTOKD, 1), (accuracy.STOCK, 1)]
    only_tables = {(t, f) for t in trainers for f in (0, 1)}
    assert to_train(trainers, [0, 1], only_tables) == []
    assert to_train(trainers, [0], set()) == [(t, 0) for t in trainers]


def test_paired_section_reports_each_block_from_the_shared_region_table():
    """The accuracy report's comparisons use nnunetv2_mtg.report's region table and CSV rows: dropout 10 points above
    stock over the subsets is "better", equal at full input is not; the Holm p sits on the mean's row only, in the
    reports' p format (below 1e-4 printed as such)."""
    import numpy as np
    from accuracy_report import paired_section

    from nnunetv2_mtg.statistics import MEAN, dice_table

    full, subsets = "T1+T1ce+T2+FLAIR", ("T2", "T1+T1ce+T2+FLAIR")
    base = np.linspace(0.4, 0.8, 24)

    def table(shift):
        return dice_table([{"case": f"c{k}", "fold": "0", "subset": s, "region": r,
                            "dice": str(d + (shift if s != full else 0.0)), "hd95": "1"}
                           for k, d in enumerate(base) for s in subsets for r in ("WT", "TC", "ET")])

    tables = {"nnUNetTrainer": table(0.0), "nnUNetTrainerModalityDropout": table(0.1)}
    lines, rows = paired_section(tables, list(tables))
    md = "\n".join(lines)
    teachers, full_only = md.split("### Full input only")
    assert "### Teachers against modality dropout" in teachers
    stock_row = next(line for line in teachers.splitlines() if line.startswith("| nnUNetTrainer |"))
    assert stock_row.endswith("| <1e-4 | worse |") and "-5.00 [-5.00, -5.00]" in stock_row  # half its subsets 10 below
    dropout_row = next(line for line in full_only.splitlines() if line.startswith("| nnUNetTrainerModalityDropout |"))
    assert "+0.00 [+0.00, +0.00]" in dropout_row and not dropout_row.endswith(("| better |", "| worse |"))
    assert {(r["comparison"][:8], r["trainer"], r["subset"]) for r in rows} == {
        ("Teachers", "nnUNetTrainer", MEAN), ("Full inp", "nnUNetTrainerModalityDropout", full)}
    assert all((r["holm_p"] != "") == (r["region"] == MEAN) for r in rows) and len(rows) == 2 * 4


def test_tables_are_reused_only_when_they_pair_with_this_run(tmp_path):
    """tables.load_tables on hand-made tables: a fold holding every case in every subset is reused, another run's
    budget or a fold lacking a case is refused; trainer_rows puts the reused folds before the evaluated ones."""
    import json

    from tables import load_tables, trainer_rows

    from nnunetv2_mtg.report import PER_CASE_FIELDS, write_csv_atomic

    run = {"dataset": "Dataset960_BraTSPhantom", "plans": "nnUNetPlans_cpu_2d", "configuration": "2d",
           "iterations": 8000}
    (tmp_path / "run.json").write_text(json.dumps(run))
    rows = [{"case": c, "fold": str(f), "subset": s, "region": "WT", "dice": "0.5", "hd95": "1"}
            for f in (0, 1) for c in ("a", "b") for s in ("T2", "T1+T2")]
    write_csv_atomic(str(tmp_path / "nnUNetTrainer.csv.gz"), PER_CASE_FIELDS, rows)
    reused = load_tables([str(tmp_path)], run, {"a", "b"}, {"T2", "T1+T2"}, ["nnUNetTrainer", accuracy.DROPOUT],
                         [1, 2])
    assert set(reused) == {("nnUNetTrainer", 1)} and len(reused[("nnUNetTrainer", 1)]) == 4
    with pytest.raises(SystemExit, match="reuse tables only with the same data, plans and --iterations"):
        load_tables([str(tmp_path)], {**run, "iterations": 4000}, {"a", "b"}, {"T2", "T1+T2"}, ["nnUNetTrainer"], [0])
    with pytest.raises(SystemExit, match="fold 0 is not a table of this run's test cases"):
        load_tables([str(tmp_path)], run, {"a", "b", "c"}, {"T2", "T1+T2"}, ["nnUNetTrainer"], [0])
    evaluated = tmp_path / "per_case.csv"
    write_csv_atomic(str(evaluated), PER_CASE_FIELDS, [{**r, "fold": "2", "dice": "0.9"} for r in rows[:4]]
                     + [{**r, "dice": "0.1"} for r in rows[4:]])  # its fold 1 is not read: the table's is
    got = trainer_rows("nnUNetTrainer", reused, str(evaluated))
    assert [(r["fold"], r["dice"]) for r in got] == [("1", "0.5")] * 4 + [("2", "0.9")] * 4
    write_csv_atomic(str(tmp_path / "nnUNetTrainerMTGTeacherMixtureRawLoss.csv.gz"), PER_CASE_FIELDS,
                     [{**r, "dice": "0.7"} for r in rows])  # the default teacher's table under its former name
    former = load_tables([str(tmp_path)], run, {"a", "b"}, {"T2", "T1+T2"}, ["nnUNetTrainerMTGTeacher"], [0])
    assert [r["dice"] for r in former[("nnUNetTrainerMTGTeacher", 0)]] == ["0.7"] * 4
    later = tmp_path / "later"  # a second folder: fold 1 is the first folder's, fold 2 only it has
    later.mkdir()
    (later / "run.json").write_text(json.dumps(run))
    write_csv_atomic(str(later / "nnUNetTrainer.csv.gz"), PER_CASE_FIELDS,
                     [{**r, "fold": str(f), "dice": "0.3"} for f in (1, 2) for r in rows[:4]])
    subsets = {"T2", "T1+T2"}
    both = load_tables([str(tmp_path), str(later)], run, {"a", "b"}, subsets, ["nnUNetTrainer"], [0, 1, 2])
    assert {f: {r["dice"] for r in v} for (_, f), v in both.items()} == {0: {"0.5"}, 1: {"0.5"}, 2: {"0.3"}}
    both = load_tables([str(later), str(tmp_path)], run, {"a", "b"}, subsets, ["nnUNetTrainer"], [0, 1, 2])
    assert {f: {r["dice"] for r in v} for (_, f), v in both.items()} == {0: {"0.5"}, 1: {"0.3"}, 2: {"0.3"}}


def test_a_former_trainer_name_is_refused_with_its_new_name():
    import lineup

    with pytest.raises(SystemExit, match=r"unknown trainer nnUNetTrainerMTGStudentMixtureRawLoss \(now "
                                         r"nnUNetTrainerMTGStudent\)"):
        lineup.trainer_class("nnUNetTrainerMTGStudentMixtureRawLoss")
