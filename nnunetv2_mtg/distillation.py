"""Distillation losses from a frozen teacher to a student that sees missing modalities.

Logit distillation uses only the full-resolution output (deep-supervision level 0): the lower levels
are nnU-Net's auxiliary heads, and the teacher is run without deep supervision. The temperature-
scaled divergences are multiplied by T^2 so their gradients keep the scale of the segmentation loss
(Hinton et al.), unless a trainer asks for the unscaled form (ProtoKD's own setting). The teacher is the
target distribution in every KL: KL(teacher || student).

The prototype term (ProtoKD, Wang et al. 2023) matches how every voxel's last decoder features relate to
the class prototypes (the mean feature of each class in the sample), teacher against student.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from nnunetv2_mtg.alignment import kl_between_gaussians
from nnunetv2_mtg.stem import block_mean


def kd_softmax(student_logits: torch.Tensor, teacher_logits: torch.Tensor, temperature: float,
               class_mean: bool = False) -> torch.Tensor:
    """Label training: KL(softmax(t / T) || softmax(s / T)) summed over classes (Hinton et al.; with `class_mean`
    the pointwise terms are averaged over classes too, as ProtoKD's code does), averaged over voxels, x T^2."""
    t = F.log_softmax(teacher_logits.float() / temperature, dim=1)
    s = F.log_softmax(student_logits.float() / temperature, dim=1)
    pointwise = t.exp() * (t - s)
    return (pointwise.mean() if class_mean else pointwise.sum(1).mean()) * temperature ** 2


def kd_sigmoid(student_logits: torch.Tensor, teacher_logits: torch.Tensor, temperature: float) -> torch.Tensor:
    """Region training: per-voxel, per-region binary KL between sigmoid(t / T) and sigmoid(s / T),
    averaged over regions and voxels, x T^2."""
    t, s = teacher_logits.float() / temperature, student_logits.float() / temperature
    p = torch.sigmoid(t)
    # log sigmoid(x) and log(1 - sigmoid(x)) = log sigmoid(-x), computed stably
    kl = p * (F.logsigmoid(t) - F.logsigmoid(s)) + (1 - p) * (F.logsigmoid(-t) - F.logsigmoid(-s))
    return kl.mean() * temperature ** 2


def full_resolution(output):
    """Level 0 of a deep-supervision list, or the tensor itself."""
    return output[0] if isinstance(output, (list, tuple)) else output


def kd_loss(student_output, teacher_output: torch.Tensor, temperature: float, regions: bool,
            t_squared: bool = True, class_mean: bool = False) -> torch.Tensor:
    """Distil the teacher's full-resolution output into the student's (a deep-supervision list or a tensor).
    Without `t_squared` the divergence is not multiplied by T^2; `class_mean` averages the softmax KL's terms over
    the classes instead of summing them (the region KL is always averaged over regions)."""
    s = full_resolution(student_output)
    kd = kd_sigmoid(s, teacher_output, temperature) if regions else \
        kd_softmax(s, teacher_output, temperature, class_mean)
    return kd if t_squared else kd / temperature ** 2


def latent_kl(student_latents: dict, teacher_latents: dict) -> torch.Tensor:
    """KL(teacher || student) between the latent Gaussians, averaged over the aligned stages."""
    return torch.stack([kl_between_gaussians(*teacher_latents[s], *student_latents[s])
                        for s in student_latents]).mean()


def standardise(features: torch.Tensor) -> torch.Tensor:
    """Per sample: each channel's voxel mean removed, divided by the RMS of the result over channels and voxels,
    so a common rescaling of the features (a norm's learnable scale) does not change it."""
    f = features.float()
    f = f - f.flatten(2).mean(2).view(*f.shape[:2], *([1] * (f.ndim - 2)))
    rms = f.flatten(1).square().mean(1).add(1e-8).sqrt()
    return f / rms.view(-1, *([1] * (f.ndim - 1)))


def stem_feature_distance(student_features: torch.Tensor, teacher_features: torch.Tensor,
                          pool: int = 1) -> torch.Tensor:
    """Mean squared distance between the standardised stem outputs (B, C, *spatial) of the student (missing
    modalities already replaced by its anchor) and of the teacher on the unmasked patch: scale-invariant on both
    sides, so neither network can satisfy it by shrinking its features. `pool` averages both over pool^d voxel
    blocks first, so the float32 copies the standardisation makes are that much smaller than the feature maps."""
    if pool > 1:
        d = student_features.ndim - 2
        student_features = block_mean(student_features, pool, d)
        teacher_features = block_mean(teacher_features, pool, d)
    return (standardise(student_features) - standardise(teacher_features)).square().mean()


def class_masks(target, label_manager) -> torch.Tensor:
    """(B, K, ...) bool masks of the classes whose prototypes are compared, from nnU-Net's full-resolution
    target: every label (background included) for label training; for region training the background
    (in no region) and each region."""
    t = full_resolution(target)
    if label_manager.has_regions:
        regions = t.bool()
        return torch.cat([~regions.any(1, keepdim=True), regions], 1)
    labels = t[:, 0].long()
    return torch.stack([labels == k for k in label_manager.all_labels if k != label_manager.ignore_label], 1)


def prototype_similarity(features: torch.Tensor, masks: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Cosine similarity of every voxel's feature to every class prototype of its sample, (B, K, voxels), and
    which (sample, class) pairs have voxels, (B, K). features (B, C, ...), masks (B, K, ...). In float32 with
    autocast off: a prototype sums a class's features over a whole patch, which overflows float16 (autocast runs
    einsum in float16 on a GPU)."""
    with torch.autocast(features.device.type, enabled=False):
        f = features.float().flatten(2)  # (B, C, N)
        m = masks.flatten(2).to(f.dtype)  # (B, K, N)
        counts = m.sum(2)
        prototypes = torch.einsum("bcn,bkn->bkc", f, m) / counts.clamp_min(1)[..., None]
        similarity = torch.einsum("bcn,bkc->bkn", F.normalize(f, dim=1, eps=1e-6),
                                  F.normalize(prototypes, dim=2, eps=1e-6))
    return similarity, counts > 0


def prototype_loss(student_features: torch.Tensor, teacher_features: torch.Tensor, masks: torch.Tensor) -> torch.Tensor:
    """Mean squared difference of the student's and the teacher's voxel-to-prototype similarity maps, over the
    classes present in each sample (ProtoKD's code skips a class absent from any sample of the batch; here
    only that sample's map is skipped)."""
    s, present = prototype_similarity(student_features, masks)
    t, _ = prototype_similarity(teacher_features, masks)
    per_map = (s - t).square().mean(2)  # (B, K)
    return (per_map * present).sum() / present.sum().clamp_min(1)


class DecoderFeatureTap:
    """Keeps the last decoder features of a U-Net (the input of its final segmentation layer) from each forward
    pass, without changing the network or its state_dict. Create it before the network is torch.compiled (a hook
    added later is not seen by the compiled graph); `only_in_training` keeps nothing in eval mode, so a network
    built with a tap holds no extra memory at inference."""

    def __init__(self, network: nn.Module, only_in_training: bool = False):
        from nnunetv2_mtg.alignment import unwrap

        self.features: torch.Tensor | None = None
        self.only_in_training = only_in_training
        self._handle = unwrap(network).decoder.seg_layers[-1].register_forward_pre_hook(self._keep)

    def _keep(self, module, args) -> None:
        if module.training or not self.only_in_training:
            self.features = args[0]

    def clear(self) -> None:
        self.features = None
