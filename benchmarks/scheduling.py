"""Which trainings a run needs and the order they run in: students after their teacher of the same fold, a fixed
number at once, a failure leaving out only what depends on it."""
from __future__ import annotations

import time
from collections.abc import Callable

from lineup import teacher_of


def log(msg: str) -> None:
    print(time.strftime("%H:%M:%S"), msg, flush=True)


def to_train(trainers: list[str], folds: list[int], reused: set[tuple[str, int]]) -> list[tuple[str, int]]:
    """(trainer, fold) to train, fold by fold in the order of `trainers`: all but the reused ones, and the teacher of
    every student to train even where the teacher itself is reused (a table cannot teach)."""
    needed = {(t, f) for f in folds for t in trainers if (t, f) not in reused}
    needed |= {(teacher_of(t), f) for t, f in needed if teacher_of(t)}
    return [(t, f) for f in folds for t in trainers if (t, f) in needed]


def run_jobs(jobs: list[tuple[str, int]], train: Callable[[str, int], None], trained: Callable[[str, int], bool],
             parallel: int) -> None:
    """Train `jobs`, `parallel` of them at once, fold by fold in the order given (so the main comparisons can be
    listed first); a student starts once its teacher of the same fold is `trained`. A failed training (`train`
    raising SystemExit) does not stop the others (only its students of that fold are left out); the run ends with
    the list of failures, and the same command then trains only what is missing."""
    from concurrent.futures import FIRST_COMPLETED, ThreadPoolExecutor, wait

    pending = sorted(jobs, key=lambda j: j[1])  # stable: within a fold, the order given
    failed: list[tuple[tuple[str, int], str]] = []
    running: dict = {}
    with ThreadPoolExecutor(parallel) as pool:
        while pending or running:
            lost = [j for j in pending if (teacher_of(j[0]), j[1]) in {f for f, _ in failed}]
            for job in lost:
                pending.remove(job)
                failed.append((job, f"its teacher {teacher_of(job[0])} fold {job[1]} failed"))
            ready = [j for j in pending if teacher_of(j[0]) is None or trained(teacher_of(j[0]), j[1])]
            for job in ready[:parallel - len(running)]:
                pending.remove(job)
                running[pool.submit(train, *job)] = job
            if not running:
                if pending:
                    raise SystemExit(f"cannot train {pending}: their teachers are not part of this run")
                break
            done, _ = wait(running, return_when=FIRST_COMPLETED)
            for future in done:
                job = running.pop(future)
                try:
                    future.result()
                except SystemExit as e:
                    log(f"    {job[0]} fold {job[1]} failed, the others go on: {e}")
                    failed.append((job, str(e)))
    if failed:
        raise SystemExit("these trainings failed or were left out:\n" + "\n".join(
            f"  {t} fold {f}: {why}" for (t, f), why in failed) + "\nrun the same command again once the cause "
            "is fixed: what finished is kept")
