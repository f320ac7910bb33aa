"""The trainers the accuracy experiment trains and compares, read from the shipped forms (nnunetv2_mtg/forms.py
`FORMS`) and from each student's own `teacher_trainer`, so a new form joins the experiment without a second list."""
from __future__ import annotations

import functools
import os

from nnunetv2_mtg.forms import FORMS, STUDENT_PREFIX, TEACHER_PREFIX

STOCK, DROPOUT, KD, PROTOKD = ("nnUNetTrainer", "nnUNetTrainerModalityDropout", "nnUNetTrainerKDStudent",
                               "nnUNetTrainerProtoKDStudent")
NOALIGN = "nnUNetTrainerMTGTeacherNoAlign"
SUFFIXES = ("", *FORMS)  # the MTG forms by their trainers' suffix; "" is the default form's plain names
DEFAULT_TEACHER, DEFAULT_STUDENT = TEACHER_PREFIX, STUDENT_PREFIX
TEACHERS = [STOCK, DROPOUT, NOALIGN] + [TEACHER_PREFIX + f for f in SUFFIXES]
FORM_STUDENTS = {f: STUDENT_PREFIX + f for f in SUFFIXES}  # the MTG students by form, for the screening
STUDENTS = [KD, PROTOKD, *FORM_STUDENTS.values()]
# the default form's earlier second names: per-case tables written under them (the 2d grid's, the 3d archive's)
# are read as the default's
FORMER_NAMES = {TEACHER_PREFIX + "MixtureRawLoss": TEACHER_PREFIX, STUDENT_PREFIX + "MixtureRawLoss": STUDENT_PREFIX}


@functools.cache
def trainer_class(name: str) -> type:
    """The class nnU-Net's own lookup finds for a trainer name (its trainers, then ours)."""
    import nnunetv2
    from nnunetv2.utilities.find_class_by_name import recursive_find_python_class

    from nnunetv2_mtg.paths import trainers_folder

    cls = recursive_find_python_class(os.path.join(nnunetv2.__path__[0], "training", "nnUNetTrainer"), name,
                                      "nnunetv2.training.nnUNetTrainer") \
        or recursive_find_python_class(trainers_folder(), name, "nnunetv2_mtg.trainers")
    if cls is None:
        raise SystemExit(f"unknown trainer {name}{renamed(name)}; known: {', '.join(TEACHERS + STUDENTS)}")
    return cls


def renamed(name: str) -> str:
    """' (now X)' for a former name of trainer X, else ''; for the errors that refuse an unknown trainer."""
    return f" (now {FORMER_NAMES[name]})" if name in FORMER_NAMES else ""


def teacher_of(trainer: str) -> str | None:
    """The trainer a student learns from (its class's `teacher_trainer`); None for a trainer without a teacher."""
    return getattr(trainer_class(trainer), "teacher_trainer", None)


def module_of(trainer: str) -> str:
    """The module to import the trainer's class from (for the iteration variants)."""
    return trainer_class(trainer).__module__
