"""Distillation losses from a frozen teacher to a student that sees missing modalities.

Logit distillation uses only the full-resolution output (deep-supervision level 0): the lower levels
are nnU-Net's auxiliary heads, and the teacher is run without deep supervision. The temperature-
scaled divergences are multiplied by T^2 so their gradients keep the scale of the segmentation loss
(Hinton et al.). The teacher is the target distribution in every KL: KL(teacher || student).
"""
from __future__ import annotations

import torch
import torch.nn.functional as F

from nnunetv2_mtg.alignment import kl_between_gaussians


def kd_softmax(student_logits: torch.Tensor, teacher_logits: torch.Tensor, temperature: float) -> torch.Tensor:
    """Label training: KL(softmax(t / T) || softmax(s / T)) summed over classes, averaged over voxels, x T^2."""
    t = F.log_softmax(teacher_logits.float() / temperature, dim=1)
    s = F.log_softmax(student_logits.float() / temperature, dim=1)
    return (t.exp() * (t - s)).sum(1).mean() * temperature ** 2


def kd_sigmoid(student_logits: torch.Tensor, teacher_logits: torch.Tensor, temperature: float) -> torch.Tensor:
    """Region training: per-voxel, per-region binary KL between sigmoid(t / T) and sigmoid(s / T),
    averaged over regions and voxels, x T^2."""
    t, s = teacher_logits.float() / temperature, student_logits.float() / temperature
    p = torch.sigmoid(t)
    # log sigmoid(x) and log(1 - sigmoid(x)) = log sigmoid(-x), computed stably
    kl = p * (F.logsigmoid(t) - F.logsigmoid(s)) + (1 - p) * (F.logsigmoid(-t) - F.logsigmoid(-s))
    return kl.mean() * temperature ** 2


def kd_loss(student_output, teacher_output: torch.Tensor, temperature: float, regions: bool) -> torch.Tensor:
    """Distil the teacher's full-resolution output into the student's (a deep-supervision list or a tensor)."""
    student = student_output[0] if isinstance(student_output, (list, tuple)) else student_output
    return (kd_sigmoid if regions else kd_softmax)(student, teacher_output, temperature)


def latent_kl(student_latents: dict, teacher_latents: dict) -> torch.Tensor:
    """KL(teacher || student) between the latent Gaussians, averaged over the aligned stages."""
    return torch.stack([kl_between_gaussians(*teacher_latents[s], *student_latents[s])
                        for s in student_latents]).mean()
