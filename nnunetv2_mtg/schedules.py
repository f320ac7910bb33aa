"""Training-length variants, named the nnU-Net way (`_5epochs`, ...), for every trainer of ours, and the
one-modality variants of the students.

nnU-Net sets `num_epochs` and friends in `nnUNetTrainer.__init__`; these mixins overwrite them after it.
`add_schedule_variants` defines `<trainer>_smoke`, `_demo`, `_1epoch`, `_2epochs`, `_5epochs`, `_50epochs` and
`_250epochs` in a trainer module, so that every trainer has the same variants without a page of two-line classes per file.
"""
from __future__ import annotations

import math

import torch


class FixedEpochs:
    """Train for the class attribute `epochs` epochs (nnU-Net's own `_5epochs`-style variants)."""

    epochs: int = 1000

    # nnU-Net records the constructor's arguments by name, so the signature must stay nnU-Net's
    def __init__(self, plans: dict, configuration: str, fold: int, dataset_json: dict,
                 device: torch.device = torch.device("cuda")):
        super().__init__(plans, configuration, fold, dataset_json, device)
        self.num_epochs = self.epochs


class NoTestTimeMirroring:
    """Final validation without test-time mirroring (8x fewer forward passes: the slow part on a CPU)."""

    def configure_rotation_dummyDA_mirroring_and_inital_patch_size(self):
        out = super().configure_rotation_dummyDA_mirroring_and_inital_patch_size()
        self.inference_allowed_mirroring_axes = None
        return out


class SmokeSchedule(NoTestTimeMirroring):
    """A CPU check of the whole pipeline: 2 epochs x 10 iterations, 2 validation iterations, and a
    final validation without test-time mirroring."""

    def __init__(self, plans: dict, configuration: str, fold: int, dataset_json: dict,
                 device: torch.device = torch.device("cuda")):
        super().__init__(plans, configuration, fold, dataset_json, device)
        self.num_epochs = 2
        self.num_iterations_per_epoch = 10
        self.num_val_iterations_per_epoch = 2


class DemoSchedule(NoTestTimeMirroring, FixedEpochs):
    """`make demo`'s schedule: epochs of 250 iterations, as many as the configuration's CPU-sized network needs to
    segment within the demo's minutes (`demo_epochs`: 2d converges on a CPU, 3d gets one epoch), and a final
    validation without test-time mirroring."""

    epochs = 1
    demo_epochs = {"2d": 8}

    def __init__(self, plans: dict, configuration: str, fold: int, dataset_json: dict,
                 device: torch.device = torch.device("cuda")):
        super().__init__(plans, configuration, fold, dataset_json, device)
        self.num_epochs = self.demo_epochs.get(configuration, self.epochs)


class DemoStudentSchedule(DemoSchedule):
    """`make demo`'s schedule of a student: it starts from its teacher's weights (`start_from_teacher`), so fewer
    epochs than the teacher's bring it to the teacher's Dice and past it over the subsets (docs/measurements.md)."""

    demo_epochs = {"2d": 5}
    start_from_teacher = True


class FixedIterations:
    """A budget of `iterations` training iterations (the accuracy experiment's `_<N>iters` variants): epochs of
    at most nnU-Net's 250 iterations, 10 validation iterations per epoch (only nnU-Net's pseudo Dice uses them), a
    checkpoint after every epoch so an interrupted run loses at most one, and no final validation of the fold:
    the experiment evaluates every model itself, on all modality subsets. `val_iterations` changes the 10."""

    iterations: int = 250
    val_iterations: int = 10

    def __init__(self, plans: dict, configuration: str, fold: int, dataset_json: dict,
                 device: torch.device = torch.device("cuda")):
        super().__init__(plans, configuration, fold, dataset_json, device)
        self.num_epochs = math.ceil(self.iterations / 250)
        self.num_iterations_per_epoch = math.ceil(self.iterations / self.num_epochs)
        self.num_val_iterations_per_epoch = self.val_iterations
        self.save_every = 1

    def perform_actual_validation(self, save_probabilities: bool = False):
        self.print_to_log_file("final validation skipped (FixedIterations: the models are evaluated separately)")


SCHEDULES = {"_smoke": (SmokeSchedule, {}), "_demo": (DemoSchedule, {}), "_1epoch": (FixedEpochs, {"epochs": 1}),
             **{f"_{n}epochs": (FixedEpochs, {"epochs": n}) for n in (2, 5, 50, 250)}}
STUDENT_SCHEDULES = {**SCHEDULES, "_demo": (DemoStudentSchedule, {})}


def variant(base: type, suffix: str, mixin: type, attributes: dict, module: str) -> type:
    """The class `<base><suffix>(mixin, base)` with `attributes`, as if written in `module`."""
    name = base.__name__ + suffix
    return type(name, (mixin, base), {**attributes, "__module__": module, "__qualname__": name})


def add_schedule_variants(namespace: dict, *trainers: type) -> None:
    """Define the schedule variants of each trainer in a module's namespace (pass `globals()`): STUDENT_SCHEDULES
    for a student (a class with a `teacher_trainer`), SCHEDULES for the others."""
    for base in trainers:
        schedules = STUDENT_SCHEDULES if hasattr(base, "teacher_trainer") else SCHEDULES
        for suffix, (mixin, attributes) in schedules.items():
            cls = variant(base, suffix, mixin, attributes, namespace["__name__"])
            namespace[cls.__name__] = cls


def add_iteration_variants(namespace: dict, iterations: int, *trainers: type, val_iterations: int = 10) -> None:
    """Define `<trainer>_<iterations>iters` for each trainer in a module's namespace."""
    for base in trainers:
        cls = variant(base, f"_{iterations}iters", FixedIterations,
                      {"iterations": iterations, "val_iterations": val_iterations}, namespace["__name__"])
        namespace[cls.__name__] = cls


def add_fixed_subset_variants(namespace: dict, base: type,
                              modalities: tuple[str, ...] = ("T1", "T1ce", "T2", "FLAIR")) -> None:
    """Define `<base>_T1`, `_T1ce`, `_T2`, `_FLAIR` in a module's namespace: the trainer on one fixed modality (one
    model per modality, as in the KD papers), each in its own nnU-Net results folder."""
    for modality in modalities:
        name = f"{base.__name__}_{modality}"
        namespace[name] = type(name, (base,), {"fixed_subset": modality, "__module__": namespace["__name__"],
                                               "__qualname__": name})
