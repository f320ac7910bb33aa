"""Does alignment help? The whole accuracy experiment in one command, resumable.

    python benchmarks/accuracy.py [--iterations 2000] [--folds 0 1 2] [--screening] [--device cpu|cuda]
                                  [--trainers T ...] [-d ID] [--jobs N] [--train-only] [--workspace DIR] [--results docs]
                                  [--tables DIR ...] [--report-only]

Data: the phantom (made if absent: 40 training and 16 test cases), planned and preprocessed by stock nnU-Net,
with the `cpu_tiny` preset on the CPU and nnU-Net's own plans on a GPU; or, with -d, any nnU-Net dataset of
$nnUNet_raw that has imagesTs/labelsTs (then nnU-Net's own folders are used).
Repeats: nnU-Net's folds (different splits and initialisations); every model is evaluated on the same test cases.
Trainers: stock nnUNetTrainer, nnUNetTrainerModalityDropout, the MTG teacher of every form, the KD and ProtoKD
students and the MTG student of every form, all with the same budget of --iterations training iterations
(trainer variants `<trainer>_<N>iters`, written into the workspace). --screening trains fold 0 of everything and
the other folds only of the baselines and of the MTG form whose student scores best on fold 0's own validation
cases (the test cases are not used for that choice).
Output: RESULTS.md and CSVs in --results (default docs/): mean Dice over the 15 subsets per trainer with its spread
over folds, full-input Dice, paired differences (students against the KD student, teachers against modality
dropout) with bootstrap CIs and Wilcoxon p, the per-subset table of the main comparison, the teachers' modality gap
and bypass figures, the machine, the budget, the wall time and the command.
Resuming: trained folds (checkpoint_final.pth), evaluated subsets and the gap report are kept in the workspace
(default benchmarks/results/accuracy) and skipped when the command is run again; an interrupted training
continues from its last epoch (`--c`). A run with `--folds 0` (everything on one fold, evaluated and reported) can
be extended later by `--folds 0 1 2 --screening` in the same workspace: fold 0 is neither retrained nor
re-evaluated. --tables DIR ... takes the model-folds found in earlier runs' per-case tables (their results'
accuracy/per_case/, one <trainer>.csv.gz each, same data and --iterations; the first folder holding a model-fold
gives it) instead of training and evaluating them:
a lost workspace, or one on another machine, costs only what the tables lack (a reused fold is still trained where
a new student needs its teacher). --jobs N trains N models at once (a GPU with a small plan has room for many);
--train-only stops after training, so a GPU machine can train the grid and the same command evaluates it elsewhere.
--report-only --tables DIR writes RESULTS.md from the tables alone (a grid's state so far, with its CIs).
"""
from __future__ import annotations

import argparse
import json
import os
import shlex
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(HERE)
BIN = os.path.dirname(sys.executable)
PHANTOM_ID = 960
sys.path.insert(0, HERE)
from nnunetv2_mtg.atomic import write_json, write_text  # noqa: E402
from lineup import (DROPOUT, FORM_STUDENTS, KD, NOALIGN, PROTOKD, STOCK, STUDENTS, TEACHER_PREFIX, TEACHERS,  # noqa: E402
                    module_of, renamed)
from scheduling import log, run_jobs, to_train  # noqa: E402
from tables import Reused, load_tables, trainer_rows  # noqa: E402

CPU_PRESETS = {"3d_fullres": "cpu_tiny", "2d": "cpu_2d"}  # the plans preset a CPU run trains on


def sh(args: list[str], logfile: str | None = None) -> None:
    """Run an installed command; its output goes to `logfile` (the experiment's own lines stay readable)."""
    exe = os.path.join(BIN, args[0])
    if logfile:
        os.makedirs(os.path.dirname(logfile), exist_ok=True)
        with open(logfile, "a") as f:
            f.write(f"\n$ {shlex.join(args)}\n")
            f.flush()
            proc = subprocess.run([exe] + args[1:], stdout=f, stderr=subprocess.STDOUT)
    else:
        proc = subprocess.run([exe] + args[1:], stdout=subprocess.DEVNULL)
    if proc.returncode != 0:
        raise SystemExit(f"failed ({proc.returncode}): {shlex.join(args)}" + (f"; see {logfile}" if logfile else ""))


def variant(trainer: str, iterations: int) -> str:
    return f"{trainer}_{iterations}iters"


def write_variants(folder: str, trainers: list[str], iterations: int) -> None:
    """The `<trainer>_<N>iters` classes, one module per trainer in the folder nnUNet_extTrainer points at: a later
    run with other --trainers adds modules and removes none, so a run beside it still finds its classes."""
    os.makedirs(folder, exist_ok=True)
    for t in trainers:
        text = "\n".join(['"""Written by benchmarks/accuracy.py: the same training budget for every trainer."""',
                          "from nnunetv2_mtg.schedules import add_iteration_variants", f"from {module_of(t)} import {t}",
                          f"add_iteration_variants(globals(), {iterations}, {t})"]) + "\n"
        path = os.path.join(folder, f"{variant(t, iterations)}.py")
        if not os.path.isfile(path) or open(path).read() != text:
            write_text(path, text)


def reuse_cache(src_out: str, dst_out: str, trainer: str, fold: int) -> None:
    """Seed another evaluation's cache of a model and fold with one already computed (evaluate checks its key)."""
    import shutil

    src = os.path.join(src_out, trainer, f"fold_{fold}", "cache")
    dst = os.path.join(dst_out, trainer, f"fold_{fold}", "cache")
    if os.path.isdir(src) and not os.path.isdir(dst):
        shutil.copytree(src, dst)


def report_groups(trainers: list[str]) -> dict[str, tuple[list[str], str]]:
    """The teachers and the students of `trainers`, each group with the trainer its comparison is against."""
    return {"teachers": ([t for t in trainers if t in TEACHERS], DROPOUT),
            "students": ([t for t in trainers if t in STUDENTS], KD)}


class Experiment:
    def __init__(self, a: argparse.Namespace):
        self.a = a
        self.ws = os.path.abspath(a.workspace)
        if a.d is None:
            for name in ("nnUNet_raw", "nnUNet_preprocessed", "nnUNet_results"):
                os.environ[name] = os.path.join(self.ws, name)
                os.makedirs(os.environ[name], exist_ok=True)
        os.environ.setdefault("nnUNet_compile", "f" if a.device == "cpu" else "t")
        os.environ.setdefault("nnUNet_def_n_proc", str(min(os.cpu_count() or 2, 8)))
        # concurrent trainings share the cores between their data-augmentation workers
        os.environ.setdefault("nnUNet_n_proc_DA", str(max(1, min(os.cpu_count() or 2, 12) // a.jobs)))
        from nnunetv2_mtg.paths import trainers_folder

        self.ext = os.path.join(self.ws, "trainers")
        os.environ["nnUNet_extTrainer"] = os.pathsep.join([trainers_folder(), self.ext])
        self.dataset_id = a.d or PHANTOM_ID
        self.reused: Reused = {}  # from --tables
        self.durations: list[float] = []
        self.jobs_total = 0
        self.jobs_done = 0

    # ---- data
    def prepare_data(self) -> None:
        from nnunetv2.utilities.dataset_name_id_conversion import maybe_convert_to_dataset_name

        if self.a.d is None and not os.path.isdir(os.path.join(os.environ["nnUNet_raw"],
                                                               f"Dataset{PHANTOM_ID}_BraTSPhantom")):
            log(f"making the phantom: {self.a.train_cases} training and {self.a.test_cases} test cases")
            sh(["nnUNetv2_mtg_phantom", "-d", str(PHANTOM_ID), "-n", str(self.a.train_cases), "--test",
                str(self.a.test_cases), "--seed", "0"], self.logfile("data"))
        self.dataset = maybe_convert_to_dataset_name(int(self.dataset_id))
        raw = os.path.join(os.environ["nnUNet_raw"], self.dataset)
        self.images, self.labels = os.path.join(raw, "imagesTs"), os.path.join(raw, "labelsTs")
        if not (os.path.isdir(self.images) and os.path.isdir(self.labels)):
            raise SystemExit(f"{raw} needs imagesTs and labelsTs: every model is evaluated on the same test cases.")
        pre = os.path.join(os.environ["nnUNet_preprocessed"], self.dataset)
        c = self.a.c
        if not os.path.isdir(os.path.join(pre, f"nnUNetPlans_{c}")):
            log(f"stock nnU-Net planning and preprocessing ({c})")
            sh(["nnUNetv2_plan_and_preprocess", "-d", str(self.dataset_id), "-c", c, "--verify_dataset_integrity"],
               self.logfile("data"))
        preset = CPU_PRESETS.get(c)
        self.plans = self.a.p or (f"nnUNetPlans_{preset}" if self.a.device == "cpu" and preset else "nnUNetPlans")
        if preset and self.plans == f"nnUNetPlans_{preset}" and \
                not os.path.isfile(os.path.join(pre, self.plans + ".json")):
            sh(["nnUNetv2_mtg_plans", "-d", str(self.dataset_id), "--preset", preset], self.logfile("data"))

    def logfile(self, name: str) -> str:
        return os.path.join(self.ws, "logs", name + ".log")

    def load_tables(self, trainers: list[str], folds: list[int]) -> None:
        """--tables' model-folds of this run's trainers and folds (tables.load_tables checks that they pair)."""
        from nnunetv2_mtg.cases import drop_unlabelled, folder_cases
        from nnunetv2_mtg.modalities import enumerate_subsets, modality_names

        with open(os.path.join(os.environ["nnUNet_raw"], self.dataset, "dataset.json")) as f:
            dataset_json = json.load(f)
        cases = {c.name for c in drop_unlabelled(folder_cases(self.images, self.labels, dataset_json))[0]}  # scored
        this = {"dataset": self.dataset, "plans": self.plans, "configuration": self.a.c,
                "iterations": self.a.iterations}
        self.reused = load_tables(self.a.tables, this, cases,
                                  {s.name for s in enumerate_subsets(modality_names(dataset_json))}, trainers, folds)
        if self.reused:
            log(f"reusing {len(self.reused)} model-fold(s) from {' and '.join(self.a.tables)}: " + ", ".join(
                f"{t} fold {f}" for t, f in sorted(self.reused)))

    # ---- training
    def fold_dir(self, trainer: str, fold: int) -> str:
        return os.path.join(os.environ["nnUNet_results"], self.dataset,
                            f"{variant(trainer, self.a.iterations)}__{self.plans}__{self.a.c}", f"fold_{fold}")

    def trained(self, trainer: str, fold: int) -> bool:
        return os.path.isfile(os.path.join(self.fold_dir(trainer, fold), "checkpoint_final.pth"))

    def train(self, trainer: str, fold: int) -> None:
        self.jobs_done += 1
        name = variant(trainer, self.a.iterations)
        if self.trained(trainer, fold):
            return
        resume = os.path.isfile(os.path.join(self.fold_dir(trainer, fold), "checkpoint_latest.pth"))
        log(f"[{self.jobs_done}/{self.jobs_total}] training {name} fold {fold}" + (" (resuming)" if resume else ""))
        t0 = time.time()
        sh(["nnUNetv2_train", str(self.dataset_id), self.a.c, str(fold), "-tr", name, "-p", self.plans,
            "-device", self.a.device] + (["--c"] if resume else []), self.logfile(f"{name}_fold{fold}"))
        self.durations.append(time.time() - t0)
        left = sum(not self.trained(t, f) for t, f in self.planned)
        eta = left * sum(self.durations) / len(self.durations) / min(self.a.jobs, max(left, 1))
        log(f"    done in {self.durations[-1] / 60:.1f} min; {left} trainings left, about {eta / 3600:.1f} h")
        if self.a.evaluate_each and (trainer, fold) not in self.reused:  # a reused table stands: this model only teaches
            self.table_as_trained(trainer, fold)

    def table_as_trained(self, trainer: str, fold: int) -> None:
        """Evaluate one freshly trained model-fold on the test cases (into the cache the run's final evaluation
        reuses) and merge its rows into --results' per-case table of the trainer, so an interrupted grid has every
        finished model's table, ready to commit and to pass to --tables."""
        from accuracy_report import write_run_json
        from nnunetv2_mtg.report import read_csv
        from tables import write_table

        group = "students" if trainer in STUDENTS else "teachers"
        out = os.path.join(self.ws, "evaluation", group)
        self.evaluate([trainer], [fold], out)
        folder = os.path.join(os.path.abspath(self.a.results), "accuracy", "per_case")
        os.makedirs(folder, exist_ok=True)
        path = os.path.join(folder, f"{trainer}.csv.gz")
        write_table(path, read_csv(os.path.join(out, variant(trainer, self.a.iterations), "per_case.csv")))
        write_run_json(folder, self.dataset, self.plans, self.a.c, self.a.iterations)
        log(f"    {trainer} fold {fold} evaluated: {os.path.relpath(path)}")

    def run_jobs(self, jobs: list[tuple[str, int]]) -> None:
        run_jobs(jobs, self.train, self.trained, self.a.jobs)

    # ---- evaluation
    def evaluate(self, trainers: list[str], folds: list[int], out: str, reference: str | None = None,
                 test_cases: bool = True) -> None:
        log(f"evaluating {len(trainers)} model(s) x {len(folds)} fold(s) over all subsets -> {os.path.relpath(out)}")
        args = ["nnUNetv2_mtg_evaluate", "-d", str(self.dataset_id), "-c", self.a.c, "-p", self.plans,
                "-device", self.a.device,
                "-tr", *[variant(t, self.a.iterations) for t in trainers], "-f", *map(str, folds), "-o", out]
        if test_cases:
            args += ["-i", self.images, "-l", self.labels]
        if reference:
            args += ["--reference", variant(reference, self.a.iterations)]
        sh(args, self.logfile("evaluation"))

    def select_form(self) -> str:
        """The MTG form whose fold-0 student has the best mean Dice over all subsets on fold 0's validation cases."""
        path = os.path.join(self.ws, "selection.json")
        if os.path.isfile(path):
            with open(path) as f:
                return json.load(f)["form"]
        out = os.path.join(self.ws, "selection")
        self.evaluate(list(FORM_STUDENTS.values()), [0], out, test_cases=False)
        scores = {f: self.mean_dice(os.path.join(out, variant(s, self.a.iterations))) for f, s in FORM_STUDENTS.items()}
        best = max(scores, key=scores.get)
        with open(path, "w") as f:
            json.dump({"form": best, "mean_dice_on_fold0_validation": scores}, f, indent=1)
        log(f"screening: best MTG form on fold 0's validation cases: {FORM_STUDENTS[best]} ({scores})")
        return best

    @staticmethod
    def mean_dice(folder: str) -> float:
        from nnunetv2_mtg.report import read_csv

        row = [r for r in read_csv(os.path.join(folder, "summary.csv")) if r["subset"] == "mean"][0]
        return float(row["dice_mean"])

    # ---- the whole run
    def run(self) -> None:
        """Data, training, then (unless --train-only) evaluation, the gap report and RESULTS.md."""
        t_start = time.time()
        self.prepare_data()
        trainers = self.a.trainers or TEACHERS + STUDENTS
        unknown = [t for t in trainers if t not in TEACHERS + STUDENTS]
        if unknown:
            raise SystemExit(f"unknown trainers {', '.join(t + renamed(t) for t in unknown)}; "
                             f"known: {', '.join(TEACHERS + STUDENTS)}")
        if self.a.report_only:
            self.load_tables(trainers, self.a.folds)
            reported = [t for t in trainers if any(r == t for r, _ in self.reused)]
            # this report's own command only: it trains nothing, so it is no run of the experiment's workspace
            self.report(reported, reported, None, report_groups(reported), None, None,
                        [self.invocation(time.time() - t_start)])
            return
        write_variants(self.ext, trainers, self.a.iterations)
        best, finalists = self.train_models(trainers)
        if self.a.train_only:
            self.record_invocation(time.time() - t_start)
            log("every model is trained (--train-only); run the command again without it to evaluate")
            return
        groups = report_groups(finalists)
        self.evaluate_models(trainers, groups)
        gap_out, gap_fold = self.gap_report([t for t in trainers if t in TEACHERS])
        self.report(trainers, finalists, best, groups, gap_out, gap_fold, self.record_invocation(time.time() - t_start))

    def train_models(self, trainers: list[str]) -> tuple[str | None, list[str]]:
        """Train what the run needs; returns the screening's best form (None without --screening) and the trainers
        reported over all folds."""
        folds = self.a.folds
        if not self.a.screening:
            if self.a.tables:
                self.load_tables(trainers, folds)
            self.planned = to_train(trainers, folds, set(self.reused))
            self.jobs_total = len(self.planned)
            self.run_jobs(self.planned)
            return None, trainers
        forms = [f for f, s in FORM_STUDENTS.items() if s in trainers]
        first = [(t, folds[0]) for t in trainers]
        self.planned = list(first)
        self.jobs_total = len(first) + 6 * (len(folds) - 1)  # the finalists' count, known after the choice
        self.run_jobs(first)
        best = self.select_form() if len(forms) > 1 else forms[0]
        finalists = [t for t in trainers if t in (STOCK, DROPOUT, NOALIGN, KD, PROTOKD)
                     or t in (TEACHER_PREFIX + best, FORM_STUDENTS[best])]
        rest = [(t, f) for f in folds[1:] for t in finalists]
        self.planned += rest
        self.jobs_total = len(self.planned)
        self.run_jobs(rest)
        return best, finalists

    def evaluate_models(self, trainers: list[str], groups: dict) -> None:
        """Every group's model-folds that --tables did not bring, on the test cases (each group against its
        reference); with --screening also fold 0 of every trainer."""
        ev, folds = os.path.join(self.ws, "evaluation"), self.a.folds
        for name, (group, reference) in groups.items():
            todo: dict[tuple[int, ...], list[str]] = {}  # trainers by the folds the tables lack, one evaluation each
            for t in group:
                todo.setdefault(tuple(f for f in folds if (t, f) not in self.reused), []).append(t)
            for fold_set, ts in todo.items():
                if fold_set:
                    self.evaluate(ts, list(fold_set), os.path.join(ev, name), reference if reference in ts else None)
        if self.a.screening and len(folds) > 1:
            screening = os.path.join(ev, "screening_fold0")
            for t in trainers:  # fold 0 of a model evaluated before (pooled, or in a fold-0 run) is reused
                for name in groups:
                    reuse_cache(os.path.join(ev, name), screening, variant(t, self.a.iterations), folds[0])
            self.evaluate(trainers, folds[:1], screening)

    def gap_report(self, teachers: list[str]) -> tuple[str, int | None]:
        """nnUNetv2_mtg_gap of the teachers on the first fold with all of them trained here (with --tables, some
        folds' models are not); returns its folder and that fold."""
        folds = self.a.folds
        fold = next((f for f in folds if all(self.trained(t, f) for t in teachers)), None)
        out = os.path.join(self.ws, "gap" if fold == folds[0] else f"gap_fold{fold}")
        if teachers and fold is None:
            log("no fold has every teacher trained in this workspace: no modality gap report")
        elif teachers and not os.path.isfile(os.path.join(out, "gap.md")):
            log(f"modality gap and bypass check of {len(teachers)} teachers (fold {fold})")
            sh(["nnUNetv2_mtg_gap", "-d", str(self.dataset_id), "-c", self.a.c, "-p", self.plans, "-device",
                self.a.device, "-tr", *[variant(t, self.a.iterations) for t in teachers], "-f", str(fold),
                "-i", self.images, "-l", self.labels, "-o", out], self.logfile("gap"))
        return out, fold

    def report(self, trainers: list[str], finalists: list[str], best: str | None, groups: dict, gap_out: str | None,
               gap_fold: int | None, runs: list[dict]) -> None:
        """RESULTS.md from the workspace's evaluations and --tables' rows (accuracy_report.write_results)."""
        from accuracy_report import RunResults, machine, write_results

        ev = os.path.join(self.ws, "evaluation")
        per_case = {}  # group -> trainer -> rows, the trainers with any
        for name, (group, _) in groups.items():
            tables = {t: os.path.join(ev, name, variant(t, self.a.iterations), "per_case.csv") for t in group}
            per_case[name] = {t: rows for t, table in tables.items()
                              if (rows := trainer_rows(t, self.reused, table))}
        path = write_results(RunResults(
            command=self.a.command, dataset=self.dataset, test_cases=len(os.listdir(self.labels)), plans=self.plans,
            configuration=self.a.c, iterations=self.a.iterations, folds=self.a.folds, trainers=trainers,
            per_case=per_case, references={name: ref for name, (_, ref) in groups.items()}, best_form=best,
            trained_on=self.trained_on(finalists), evaluated_on=machine(self.a.device), runs=runs,
            tables=self.a.tables, reused=sorted(self.reused), evaluation=ev, gap=gap_out, gap_fold=gap_fold,
            workspace=self.ws), self.a.results)
        log(f"results in {path}")

    def trained_on(self, trainers: list[str]) -> str:
        """Where the reported models were trained, from nnU-Net's debug.json of each fold trained here (a run may
        train on a GPU machine with --train-only and be evaluated elsewhere)."""
        from collections import Counter

        seen = Counter()
        for t in trainers:
            for f in self.a.folds:
                path = os.path.join(self.fold_dir(t, f), "debug.json")
                if (t, f) not in self.reused and os.path.isfile(path):
                    with open(path) as fh:
                        d = json.load(fh)
                    seen[f"{d.get('gpu_name') or d.get('device', '?')}, torch {d.get('torch_version', '?')}"] += 1
        return "; ".join(f"{where} ({n} models)" for where, n in seen.items()) or \
            ("the run(s) that wrote --tables" if self.reused else "unknown")

    def invocation(self, seconds: float) -> dict:
        """This invocation: its command, machine, duration and end."""
        from accuracy_report import machine

        return {"command": self.a.command, "machine": machine(self.a.device), "seconds": round(seconds),
                "ended": time.strftime("%Y-%m-%d %H:%M")}

    def record_invocation(self, seconds: float) -> list[dict]:
        """Every invocation of the experiment in this workspace, oldest first: it may be resumed several times, or
        trained on one machine (--train-only) and evaluated on another."""
        path = os.path.join(self.ws, "invocations.json")
        runs = json.load(open(path)) if os.path.isfile(path) else []
        runs.append(self.invocation(seconds))
        write_json(path, runs)
        return runs


def parse(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("-d", type=int, default=None, help="an nnU-Net dataset with imagesTs/labelsTs instead of the phantom")
    p.add_argument("-c", default="3d_fullres", help="nnU-Net configuration (default 3d_fullres; 2d converges on "
                                                    "2 CPU cores)")
    p.add_argument("-p", default=None, help="plans (default on cpu: nnUNetPlans_cpu_tiny for 3d_fullres, "
                                            "nnUNetPlans_cpu_2d for 2d; nnUNetPlans on cuda)")
    p.add_argument("--device", choices=["cpu", "cuda"], default="cpu")
    p.add_argument("--iterations", type=int, default=2000, help="training iterations of every trainer (default 2000)")
    p.add_argument("--folds", type=int, nargs="+", default=[0, 1, 2], help="nnU-Net folds used as repeats")
    p.add_argument("--trainers", nargs="+", default=None, help="a subset of the grid (default: all)")
    p.add_argument("--screening", action="store_true", help="fold 0 of everything, the other folds only of the "
                                                             "baselines and the best MTG form")
    p.add_argument("--jobs", type=int, default=1, help="trainings run at once (default 1); on a GPU a small plan "
                                                       "leaves the card mostly idle, so several fit side by side")
    p.add_argument("--evaluate-each", action="store_true", help="evaluate every model as soon as it is trained and "
                                                                 "write its per-case table to --results (what an "
                                                                 "interrupted grid keeps; --tables reads them)")
    p.add_argument("--train-only", action="store_true", help="train every model and stop (evaluate later, "
                                                              "e.g. on another machine, by the same command)")
    p.add_argument("--train-cases", type=int, default=40, help="phantom training cases (default 40)")
    p.add_argument("--test-cases", type=int, default=16, help="phantom test cases (default 16)")
    p.add_argument("--workspace", default=os.path.join(HERE, "results", "accuracy"))
    p.add_argument("--results", default=os.path.join(REPO, "docs"), help="where RESULTS.md and its CSVs go")
    p.add_argument("--tables", nargs="+", default=None, help="earlier runs' per_case/ folders (<trainer>.csv.gz): "
                                                             "the model-folds found there are reused, not trained and "
                                                             "evaluated (the first folder holding one gives it)")
    p.add_argument("--report-only", action="store_true", help="train and evaluate nothing: RESULTS.md from the "
                                                               "model-folds found in --tables and this workspace (what a "
                                                               "running or interrupted grid has committed so far)")
    a = p.parse_args(argv)
    if a.report_only and (not a.tables or a.train_only or a.screening or a.evaluate_each):
        p.error("--report-only reports the model-folds of --tables DIR as they are: give --tables, and no "
                "--train-only, --screening or --evaluate-each")
    if a.tables and a.screening:
        p.error("--tables reuses fixed model-folds, --screening chooses them: run the screening in one workspace")
    for folder in a.tables or []:
        if not os.path.isdir(folder):
            p.error(f"--tables {folder} is not a folder: pass the per_case/ folder beside an earlier RESULTS.md, "
                    "e.g. docs/accuracy_default/accuracy/per_case")
    if a.evaluate_each and (a.train_only or a.screening):
        p.error("--evaluate-each evaluates every model as it is trained: not with --train-only or --screening")
    if a.train_only and a.screening:
        p.error("--screening chooses the MTG form by evaluating fold 0, so it cannot be --train-only: "
                "train the whole grid with --train-only, or screen without it")
    return a


def main(argv: list[str] | None = None) -> None:
    a = parse(argv)
    a.command = "python benchmarks/accuracy.py " + shlex.join(sys.argv[1:] if argv is None else argv)
    sys.path.insert(0, HERE)
    Experiment(a).run()


if __name__ == "__main__":
    main()
