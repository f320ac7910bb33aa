"""Per-modality stem anchors (the authors' own form of alignment, DESIGN.md section 3).

A modality stem is one grouped convolution block (groups = number of modalities) in front of nnU-Net's
encoder: every modality gets its own shallow features f_m. The features of each present modality are
pulled onto a learnable anchor, and a missing modality enters the encoder as that anchor instead of as
the features of an all-zero image. The network finds the missing modalities itself: a channel that is
exactly 0 over a whole sample is missing (what masking, evaluation and prediction write), so stock
nnU-Net inference needs no mask. A sample in which every channel is zero (a background patch, a
sliding window outside the head) is passed through without substitution.

Anchor kinds:
- `mixture`: a learnable convex combination (softmax weights over the present modalities) of the present
  modalities' features; loss = mean squared distance of each present f_m to it.
- `gaussian`: a learnable per-channel N(mu_a, sigma_a^2) shared by all modalities; loss = Gaussian
  negative log-likelihood of each present f_m. sigma_a = floor + softplus(raw) keeps the loss bounded
  below by log(floor) + log(2 pi) / 2, so shrinking sigma_a cannot run it to minus infinity. A missing
  modality is replaced by mu_a.
"""
from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

ANCHOR_KINDS = ("mixture", "gaussian")


def presence(x: torch.Tensor) -> torch.Tensor:
    """(B, M) bool: channel m of sample b has a non-zero voxel. A sample with no non-zero channel counts as
    complete (nothing is substituted there)."""
    present = x.flatten(2).ne(0).any(2)
    return present | ~present.any(1, keepdim=True)


def _spatial(t: torch.Tensor, ndim: int) -> torch.Tensor:
    """Append singleton spatial dimensions so that t broadcasts against a (B, M, F, *spatial) tensor."""
    return t.view(*t.shape, *([1] * (ndim - t.ndim)))


def _per_channel(t: torch.Tensor, ndim: int) -> torch.Tensor:
    """(F,) -> (1, 1, F, 1, ...): one value per feature channel, shared by samples, modalities and voxels."""
    return t.view(1, 1, -1, *([1] * (ndim - 3)))


class MixtureAnchor(nn.Module):
    """a = sum_m w_m f_m over the present modalities, w = softmax of learnable logits restricted to them."""

    def __init__(self, num_modalities: int):
        super().__init__()
        self.logits = nn.Parameter(torch.zeros(num_modalities))

    def forward(self, features: torch.Tensor, present: torch.Tensor) -> torch.Tensor:
        """features (B, M, F, ...), present (B, M) -> anchor (B, 1, F, ...)."""
        logits = self.logits.float().expand_as(present).masked_fill(~present, float("-inf"))
        weights = _spatial(torch.softmax(logits, dim=1).to(features.dtype), features.ndim)
        return (weights * features).sum(1, keepdim=True)

    def loss(self, features: torch.Tensor, present: torch.Tensor) -> torch.Tensor:
        anchor = self(features, present)
        distance = (features.float() - anchor.float()).square().flatten(2).mean(2)  # (B, M)
        return (distance * present).sum() / present.sum()


class GaussianAnchor(nn.Module):
    """A per-channel N(mu_a, sigma_a^2) with sigma_a >= `sigma_floor`."""

    def __init__(self, channels: int, sigma_floor: float = 0.1):
        super().__init__()
        if sigma_floor <= 0:
            raise ValueError(f"sigma_floor must be > 0, got {sigma_floor}")
        self.sigma_floor = sigma_floor
        self.mu = nn.Parameter(torch.zeros(channels))
        # softplus(raw) + floor = 1 at the start: the anchor starts as N(0, 1)
        self.raw_sigma = nn.Parameter(torch.full((channels,), math.log(math.expm1(1.0 - sigma_floor))))

    def sigma(self) -> torch.Tensor:
        return self.sigma_floor + F.softplus(self.raw_sigma)

    def forward(self, features: torch.Tensor, present: torch.Tensor) -> torch.Tensor:
        return _per_channel(self.mu.to(features.dtype), features.ndim)

    def loss(self, features: torch.Tensor, present: torch.Tensor) -> torch.Tensor:
        f = features.float()
        mu = _per_channel(self.mu.float(), f.ndim)
        sigma = _per_channel(self.sigma().float(), f.ndim)
        nll = 0.5 * ((f - mu) / sigma).square() + torch.log(sigma) + 0.5 * math.log(2 * math.pi)
        per_modality = nll.flatten(2).mean(2)  # (B, M)
        return (per_modality * present).sum() / present.sum()

    def lower_bound(self) -> float:
        """The least value the loss can take: every feature at mu_a and sigma_a at its floor."""
        return math.log(self.sigma_floor) + 0.5 * math.log(2 * math.pi)


class ModalityStem(nn.Module):
    """x (B, M, ...) -> (B, M * F, ...): per-modality features, missing modalities replaced by the anchor.

    `features` and `present` of the last forward pass are kept for the anchor loss and the student's latent
    term; `output` is what the encoder received.
    """

    def __init__(self, num_modalities: int, channels_per_modality: int, anchor: str, conv_op: type[nn.Module],
                 norm_op: type[nn.Module] | None, norm_op_kwargs: dict | None, nonlin: type[nn.Module] | None,
                 nonlin_kwargs: dict | None, sigma_floor: float = 0.1):
        super().__init__()
        if anchor not in ANCHOR_KINDS:
            raise ValueError(f"unknown anchor kind {anchor!r}; known: {', '.join(ANCHOR_KINDS)}")
        self.num_modalities, self.channels_per_modality, self.anchor_kind = num_modalities, channels_per_modality, anchor
        width = num_modalities * channels_per_modality
        layers = [conv_op(num_modalities, width, kernel_size=3, padding=1, groups=num_modalities)]
        if norm_op is not None:
            layers.append(norm_op(width, **(norm_op_kwargs or {})))  # per channel: no mixing across modalities
        if nonlin is not None:
            layers.append(nonlin(**(nonlin_kwargs or {})))
        self.block = nn.Sequential(*layers)
        self.anchor = MixtureAnchor(num_modalities) if anchor == "mixture" else \
            GaussianAnchor(channels_per_modality, sigma_floor)
        self.features: torch.Tensor | None = None
        self.present: torch.Tensor | None = None
        self.output: torch.Tensor | None = None

    @property
    def out_channels(self) -> int:
        return self.num_modalities * self.channels_per_modality

    def split(self, x: torch.Tensor) -> torch.Tensor:
        """(B, M, ...) -> per-modality features (B, M, F, ...), before any substitution."""
        f = self.block(x)
        return f.view(f.shape[0], self.num_modalities, self.channels_per_modality, *f.shape[2:])

    def substitute(self, features: torch.Tensor, present: torch.Tensor) -> torch.Tensor:
        """Missing modalities' features replaced by the anchor; (B, M * F, ...)."""
        keep = _spatial(present, features.ndim)
        out = torch.where(keep, features, self.anchor(features, present).to(features.dtype))
        return out.flatten(1, 2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        self.present = presence(x)
        self.features = self.split(x)
        self.output = self.substitute(self.features, self.present)
        return self.output

    def alignment_loss(self) -> torch.Tensor:
        """The anchor loss over the present modalities of the last forward pass."""
        return self.anchor.loss(self.features, self.present)

    def anchor_everywhere(self) -> torch.Tensor:
        """What the encoder would get if every modality of the last forward pass were replaced by the anchor
        (the bypass check's replacement); a mixture anchor is mixed from the modalities that were present."""
        return self.anchor(self.features, self.present).expand_as(self.features).flatten(1, 2)
