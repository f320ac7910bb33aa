"""Finding, checking and loading the frozen teacher of a student trainer.

The teacher is looked up where nnU-Net put it: `$nnUNet_results/<dataset>/<teacher>__<plans>__<configuration>/
fold_<f>/checkpoint_final.pth`, with the student's dataset, plans, configuration and fold; the environment
variable `nnUNet_MTG_TEACHER` (a checkpoint file or a fold folder) overrides that. Everything is checked
before nnU-Net creates the student's output folder, so a failed start leaves `$nnUNet_results` untouched.
"""
from __future__ import annotations

import os
import re

import torch
from torch import nn

from nnunetv2_mtg.env import UserInputError, train_command

TEACHER_ENV = "nnUNet_MTG_TEACHER"
_SCHEDULE = re.compile(r"(_smoke|_demo|_\d+epochs?|_\d+iters)$")


def paired_teacher_name(student_class_name: str, teacher_trainer: str) -> str:
    """The teacher trainer with the student's schedule suffix: ..._smoke -> nnUNetTrainerMTGTeacher_smoke."""
    m = _SCHEDULE.search(student_class_name)
    return teacher_trainer + (m.group(1) if m else "")


def find_teacher_checkpoint(student_class_name: str, teacher_trainer: str, plans: dict, configuration: str,
                            fold) -> str:
    """Path of the teacher's checkpoint; a UserInputError with the training command when there is none."""
    override = os.environ.get(TEACHER_ENV)
    if override:
        path = os.path.join(override, "checkpoint_final.pth") if os.path.isdir(override) else override
        if not os.path.isfile(path):
            raise UserInputError(f"${TEACHER_ENV} = {override}, but {path} does not exist. Point it at a teacher's "
                                 f"checkpoint_final.pth or at its fold_X folder, or unset it to use the paired "
                                 f"teacher.")
        return path
    from nnunetv2.paths import nnUNet_results

    teacher = paired_teacher_name(student_class_name, teacher_trainer)
    folder = os.path.join(nnUNet_results or "$nnUNet_results", plans["dataset_name"],
                          f"{teacher}__{plans['plans_name']}__{configuration}", f"fold_{fold}")
    path = os.path.join(folder, "checkpoint_final.pth")
    if not os.path.isfile(path):
        raise UserInputError(
            f"{student_class_name} needs its trained teacher {teacher}, but {path} does not exist. Train it first:\n"
            f"    {teacher_train_command(plans, configuration, fold, teacher)}\n"
            f"or set {TEACHER_ENV} to another teacher's checkpoint file or fold folder.")
    return path


def teacher_train_command(plans: dict, configuration: str, fold, trainer: str) -> str:
    return train_command(plans["dataset_name"], configuration, fold, trainer, plans["plans_name"])


def _load_checkpoint(path: str) -> dict:
    try:
        ckpt = torch.load(path, map_location="cpu", weights_only=False)
    except Exception as e:  # any unreadable file is the user's input problem here
        raise UserInputError(f"teacher checkpoint {path} cannot be read by torch.load ({type(e).__name__}: {e}). "
                             f"It must be a checkpoint_final.pth written by nnUNetv2_train.") from None
    if not isinstance(ckpt, dict) or not {"network_weights", "trainer_name", "init_args"} <= set(ckpt):
        raise UserInputError(f"{path} is not an nnU-Net training checkpoint (no network_weights / trainer_name / "
                             f"init_args). Use a checkpoint_final.pth written by nnUNetv2_train.")
    return ckpt


def _labels_and_regions(dataset_json: dict) -> tuple:
    def norm(v):
        return tuple(v) if isinstance(v, (list, tuple)) else (v,)

    return (tuple(sorted((k, norm(v)) for k, v in dataset_json["labels"].items())),
            tuple(dataset_json.get("regions_class_order") or ()))


def check_compatible(teacher_init: dict, plans: dict, configuration: str, dataset_json: dict, path: str) -> None:
    """The teacher must see the same data the same way and predict the same outputs as the student."""
    from nnunetv2.utilities.plans_handling.plans_handler import PlansManager

    from nnunetv2_mtg.modalities import modality_names

    t_dj, t_plans = teacher_init["dataset_json"], teacher_init["plans"]
    problems = []
    t_mod, s_mod = modality_names(t_dj), modality_names(dataset_json)
    if t_mod != s_mod:
        problems.append(f"input channels differ: teacher {t_mod}, student {s_mod}")
    if _labels_and_regions(t_dj) != _labels_and_regions(dataset_json):
        problems.append(f"labels/regions differ: teacher {t_dj['labels']} (regions_class_order "
                        f"{t_dj.get('regions_class_order')}), student {dataset_json['labels']} (regions_class_order "
                        f"{dataset_json.get('regions_class_order')})")
    t_cfg = PlansManager(t_plans).get_configuration(teacher_init["configuration"])
    s_cfg = PlansManager(plans).get_configuration(configuration)
    for what in ("spacing", "normalization_schemes", "use_mask_for_norm"):
        if list(getattr(t_cfg, what)) != list(getattr(s_cfg, what)):
            problems.append(f"{what} differs: teacher {list(getattr(t_cfg, what))}, student {list(getattr(s_cfg, what))}")
    for what in ("transpose_forward", "foreground_intensity_properties_per_channel"):
        if t_plans.get(what) != plans.get(what):
            problems.append(f"{what} differs between the teacher's and the student's plans")
    if problems:
        raise UserInputError(f"teacher {path} does not fit this student: " + "; ".join(problems) +
                             ". Use a teacher trained on the same dataset and preprocessing.")


def check_form(teacher_network: nn.Module, teacher_form, student_form, path: str, teacher_name: str,
               command: str) -> None:
    """A student with latent terms needs a teacher of its own alignment form and latent widths."""
    from nnunetv2_mtg.alignment import latent_channels

    problem = None
    if teacher_form.structure != student_form.structure:
        problem = f"has the alignment form '{teacher_form.name}', the student '{student_form.name}'"
    else:
        head = getattr(teacher_network, "align", {})
        widths = {s: head[str(s)].mu.out_channels for s in teacher_form.stages}
        if widths != latent_channels(student_form.widths, student_form.stages):
            problem = (f"has aligned latents of widths {widths} (stage: channels), the student "
                       f"{latent_channels(student_form.widths, student_form.stages)}")
    if problem:
        raise UserInputError(f"teacher {path} ({teacher_name}) {problem}; the student's latent terms need the same. "
                             f"Train the paired teacher:\n    {command}\nor point {TEACHER_ENV} at a teacher of form "
                             f"'{student_form.name}' (or use a student with lambda_lat = 0).")


def load_teacher(path: str, plans: dict, configuration: str, fold, dataset_json: dict,
                 form_check: tuple[str, str, object] | None) -> nn.Module:
    """Build the teacher's network from its own trainer and plans, load its weights, freeze it (eval,
    no gradients). `form_check` = (student class name, paired teacher trainer, student's AlignmentForm) asks
    for a teacher of the student's alignment form."""
    from nnunetv2.utilities.find_objects import recursive_find_trainer_class_by_name
    from nnunetv2.utilities.label_handling.label_handling import determine_num_input_channels
    from nnunetv2.utilities.plans_handling.plans_handler import PlansManager

    from nnunetv2_mtg.forms import read_form

    ckpt = _load_checkpoint(path)
    init = ckpt["init_args"]
    check_compatible(init, plans, configuration, dataset_json, path)
    pm = PlansManager(init["plans"])
    cm = pm.get_configuration(init["configuration"])
    trainer_class = recursive_find_trainer_class_by_name(ckpt["trainer_name"])
    if trainer_class is None:
        raise UserInputError(f"teacher {path} was trained with {ckpt['trainer_name']}, which nnU-Net cannot find. Add "
                             f"the folder of its trainer class to nnUNet_extTrainer.")
    n_in = determine_num_input_channels(pm, cm, init["dataset_json"])
    network = trainer_class.build_network_architecture(
        pm, cm, n_in, pm.get_label_manager(init["dataset_json"]).num_segmentation_heads, enable_deep_supervision=False)
    network.load_state_dict(ckpt["network_weights"])
    if form_check is not None:
        student_name, teacher_trainer, student_form = form_check
        command = teacher_train_command(plans, configuration, fold, paired_teacher_name(student_name, teacher_trainer))
        check_form(network, read_form(trainer_class, cm.network_arch_init_kwargs, n_in), student_form, path,
                   ckpt["trainer_name"], command)
    network.eval()
    for p in network.parameters():
        p.requires_grad_(False)
    return network
