"""Golden values: every teacher form and student, built by nnU-Net from the suite's cpu_tiny plans with a fixed seed,
gives the same network output and the same loss and loss terms on one fixed batch as when tests/golden.json was
written. A refactor that moves behaviour (a weight lost, a term computed on other features, a form's attribute read
differently) changes a number here; one that only moves code does not.

Each student learns from an untrained teacher built the same way (its checkpoint through nnUNet_MTG_TEACHER), so
no training is needed. `MTG_WRITE_GOLDEN=1 pytest tests/test_golden.py` rewrites the file (only for a change that
is meant to move behaviour; say so in the commit).
"""
import json
import os

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from nnunetv2_mtg.alignment import unwrap

GOLDEN = os.path.join(os.path.dirname(os.path.abspath(__file__)), "golden.json")
TEACHERS = ["nnUNetTrainerModalityDropout", "nnUNetTrainerMTGTeacher", "nnUNetTrainerMTGTeacherNoAlign",
            *(f"nnUNetTrainerMTGTeacher{f}" for f in ("Bottleneck", "AllStages", "Mixture", "Gaussian", "Standin",
                                                       "FirstBlock"))]
STUDENTS = {"nnUNetTrainerKDStudent": "nnUNetTrainerModalityDropout",
            "nnUNetTrainerProtoKDStudent": "nnUNetTrainerModalityDropout",
            "nnUNetTrainerMTGStudent": "nnUNetTrainerMTGTeacher",
            **{f"nnUNetTrainerMTGStudent{f}": f"nnUNetTrainerMTGTeacher{f}"
               for f in ("Bottleneck", "AllStages", "Mixture", "Gaussian", "Standin", "FirstBlock")}}
SEED = 1234


def _batch(trainer) -> dict:
    """Two 32^3 patches of seeded noise (smaller than the plans' 48^3: a third of the time), FLAIR missing (all zero)
    in the first (the students mask more), and a seeded label map as nnU-Net's loader gives it (region targets at
    every deep-supervision scale)."""
    g = torch.Generator().manual_seed(SEED)
    shape = tuple(min(32, int(s)) for s in trainer.configuration_manager.patch_size)
    data = torch.randn((2, 4, *shape), generator=g)
    data[0, 3] = 0
    labels = torch.randint(0, 4, (2, 1, *shape), generator=g).float()
    targets = []
    for scale in trainer._get_deep_supervision_scales():
        size = [round(s * f) for s, f in zip(shape, scale)]
        seg = F.interpolate(labels, size=size, mode="nearest")
        targets.append(torch.cat([torch.isin(seg, torch.tensor(r, dtype=seg.dtype)).float()
                                  for r in trainer.label_manager.foreground_regions], 1))
    return {"data": data, "target": targets}


def _measure(trainer) -> dict:
    """The eval-mode output on the batch (sum and mean absolute value), then one training step's loss and terms."""
    batch = _batch(trainer)
    net = unwrap(trainer.network)
    with torch.no_grad():
        net.eval()
        out = net(batch["data"])
        out = out[0] if isinstance(out, (list, tuple)) else out
        net.train()
    np.random.seed(SEED)  # the students' masks are drawn in train_step, from numpy's global RNG
    step = trainer.train_step(batch)
    return {"output_sum": float(out.double().sum()), "output_abs": float(out.double().abs().mean()),
            **{k: float(v) for k, v in sorted(step.items())}}


@pytest.fixture(scope="module")
def measured(phantom, nnunet_env, tmp_path_factory) -> dict:
    from nnunetv2.run.run_training import get_trainer_from_args

    with pytest.MonkeyPatch.context() as env:
        for k, v in {**nnunet_env, "nnUNet_results": str(tmp_path_factory.mktemp("golden_results"))}.items():
            env.setenv(k, v)

        def start(name: str, teacher_checkpoint: str | None = None):
            with pytest.MonkeyPatch.context() as teacher:
                if teacher_checkpoint:
                    teacher.setenv("nnUNet_MTG_TEACHER", teacher_checkpoint)
                torch.manual_seed(SEED)
                trainer = get_trainer_from_args(str(phantom["id"]), "3d_fullres", 0, name, "nnUNetPlans_cpu_tiny",
                                                device=torch.device("cpu"))
                torch.manual_seed(SEED)
                trainer.initialize()
                return trainer

        values, checkpoints = {}, {}
        folder = tmp_path_factory.mktemp("golden_teachers")
        for name in TEACHERS:
            trainer = start(name)
            checkpoints[name] = str(folder / f"{name}.pth")
            trainer.save_checkpoint(checkpoints[name])  # the untrained weights: the students' teacher
            values[name] = _measure(trainer)
        for name, teacher in STUDENTS.items():
            values[name] = _measure(start(name, checkpoints[teacher]))
        return values


def test_outputs_and_loss_terms_match_the_golden_values(measured):
    if os.environ.get("MTG_WRITE_GOLDEN") == "1":
        with open(GOLDEN, "w") as f:
            json.dump(measured, f, indent=1, sort_keys=True)
            f.write("\n")
    with open(GOLDEN) as f:
        golden = json.load(f)
    assert sorted(measured) == sorted(golden)
    for name, values in golden.items():
        assert sorted(measured[name]) == sorted(values), name  # the same loss terms, none lost or added
        for key, value in values.items():
            assert measured[name][key] == pytest.approx(value, rel=1e-4, abs=1e-6), (name, key)


def test_the_golden_values_tell_the_trainers_apart(measured):
    """The control: the batch reaches every term, so a form that stopped differing from another would show."""
    losses = [round(v["loss"], 5) for v in measured.values()]
    assert len(set(losses)) == len(losses)
    for name in STUDENTS:
        assert measured[name]["kd"] > 1e-4, name  # the drawn masks hide something from every student
    assert measured["nnUNetTrainerMTGStudent"]["stem_latent"] > 0
    assert measured["nnUNetTrainerMTGStudent"]["anchor_align"] > 0  # a masked sample with two modalities left
    assert measured["nnUNetTrainerMTGTeacher"]["anchor_align"] > 0
    assert measured["nnUNetTrainerMTGTeacherNoAlign"]["anchor_align"] > 0  # logged at weight 0
