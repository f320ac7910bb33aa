"""Per-modality features aligned to a learnable anchor (the authors' own form of alignment, docs/design.md).

A modality block is a convolution grouped by modality (groups = number of modalities) with its norm and
nonlinearity: every modality gets its own shallow features f_m. It sits either in front of nnU-Net's encoder
(`front`: the modality stem, the first stem form) or replaces the first convolution block of nnU-Net's encoder
(`first_block`: the same idea at stock cost, since a grouped convolution does less work than the dense one it
replaces). The features of each present modality are pulled onto a learnable anchor, and a missing modality
enters the rest of the network as that anchor instead of as the features of an all-zero image. The network
finds the missing modalities itself: a channel that is exactly 0 over a whole sample is missing (what
masking, evaluation and prediction write), so stock nnU-Net inference needs no mask. A sample in which every
channel is zero (a background patch, a sliding window outside the head) is passed through without
substitution and takes no part in the alignment loss.

Anchor kinds:
- `mixture`: a learnable convex combination (softmax weights over the present modalities) of the present
  modalities' features; loss = distance of each present f_m to it. Samples with fewer than two present
  modalities are left out of the loss (one modality is its own mixture: the distance is 0 by construction).
- `standin`: one mixture per target modality (M x M logits): a missing modality t is replaced by the mixture
  of the present modalities with t's own weights, and each present modality is pulled to the mixture the
  other present ones make for it (so the stand-in is trained to predict the modality it replaces).
- `gaussian`: a learnable per-channel N(mu_a, sigma_a^2) shared by all modalities; loss = Gaussian negative
  log-likelihood of each present f_m, sigma_a >= floor so it is bounded below.

The loss `invariant` is invariant to a common rescaling of the aligned features: the mixture distances are
divided by the features' own variance, the Gaussian is fitted to the standardised features (and a missing
modality gets the anchor mean de-standardised). `raw` is the scale-dependent loss: a norm with learnable scale
in the block, followed by the encoder's own norm, lets it fall by shrinking the features without aligning
anything, so its curve is no evidence of alignment. Which one the default teacher uses is decided by the accuracy
experiment (docs/RESULTS.md), not here.
"""
from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

ANCHOR_KINDS = ("mixture", "standin", "gaussian")
LOSS_KINDS = ("invariant", "raw")
_EPS = 1e-8


def presence(x: torch.Tensor) -> torch.Tensor:
    """(B, M) bool: channel m of sample b has a non-zero voxel. A sample with no non-zero channel counts as
    complete (nothing is substituted there)."""
    present = x.flatten(2).ne(0).any(2)
    return present | ~present.any(1, keepdim=True)


def informative(x: torch.Tensor) -> torch.Tensor:
    """(B,) bool: the sample has a non-zero voxel in some channel (background patches do not)."""
    return x.flatten(1).ne(0).any(1)


def _spatial(t: torch.Tensor, ndim: int) -> torch.Tensor:
    """Append singleton spatial dimensions so that t broadcasts against a (B, M, F, *spatial) tensor."""
    return t.view(*t.shape, *([1] * (ndim - t.ndim)))


def _per_channel(t: torch.Tensor, ndim: int) -> torch.Tensor:
    """(F,) -> (1, 1, F, 1, ...): one value per feature channel, shared by samples, modalities and voxels."""
    return t.view(1, 1, -1, *([1] * (ndim - 3)))


def _masked_mean(values: torch.Tensor, weights: torch.Tensor) -> torch.Tensor:
    """Weighted mean of (B, M) values; 0 (with a gradient path) when nothing has weight."""
    weights = weights.to(values.dtype)
    return (values * weights).sum() / weights.sum().clamp_min(1.0)


def feature_statistics(features: torch.Tensor, present: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Per sample, over the present modalities: the mean of each feature channel, (B, 1, F, 1, ...), and the
    mean squared deviation from it over modalities, channels and voxels, (B,). Rescaling every feature by s
    scales them by s and s^2; adding a constant to every modality's features moves only the mean. Elementwise
    work stays in the features' precision, sums are float32."""
    w = present.float()  # (B, M)
    count = w.sum(1).clamp_min(1.0)
    centre = torch.einsum("bm,bmc->bc", w, features.flatten(3).mean(3, dtype=torch.float32)) / count[:, None]
    centre = _spatial(centre[:, None], features.ndim)
    deviation = (features - centre.to(features.dtype)).square().flatten(3).mean(3, dtype=torch.float32).mean(2)
    return centre, (deviation * w).sum(1) / count


def block_mean(features: torch.Tensor, k: int, spatial_dims: int | None = None) -> torch.Tensor:
    """(B, M, F, *spatial) averaged over k x k (x k) voxel blocks (a trailing remainder is dropped), in the
    features' own precision and without keeping them for the backward pass (a pooling layer under autocast
    would keep a float32 copy). `spatial_dims` counts the trailing dimensions pooled (default: all after the
    third, as for (B, M, F, ...); 2 or 3 for (B, C, ...) feature maps)."""
    lead = 3 if spatial_dims is None else features.ndim - spatial_dims
    spatial = features.shape[lead:]
    crop = features[(..., *[slice(0, s - s % k) for s in spatial])]
    blocks = [d for s in spatial for d in (s // k, k)]
    pooled = crop.reshape(*features.shape[:lead], *blocks)
    return pooled.mean(dim=tuple(range(lead + 1, pooled.ndim, 2)))


class MixtureAnchor(nn.Module):
    """a = sum_m w_m f_m over the present modalities, w = softmax of learnable logits restricted to them."""

    def __init__(self, num_modalities: int, loss_kind: str = "invariant"):
        super().__init__()
        self.logits = nn.Parameter(torch.zeros(num_modalities))
        self.loss_kind = loss_kind

    def forward(self, features: torch.Tensor, present: torch.Tensor) -> torch.Tensor:
        """features (B, M, F, ...), present (B, M) -> anchor (B, 1, F, ...)."""
        logits = self.logits.float().expand_as(present).masked_fill(~present, float("-inf"))
        weights = _spatial(torch.softmax(logits, dim=1).to(features.dtype), features.ndim)
        return (weights * features).sum(1, keepdim=True)

    def loss(self, features: torch.Tensor, present: torch.Tensor, eligible: torch.Tensor) -> torch.Tensor:
        distance = (features - self(features, present)).square().flatten(2).mean(2, dtype=torch.float32)  # (B, M)
        if self.loss_kind == "invariant":
            distance = distance / (feature_statistics(features, present)[1][:, None] + _EPS)
        return _masked_mean(distance, present & (eligible & (present.sum(1) >= 2))[:, None])


class StandinAnchor(MixtureAnchor):
    """One mixture of the present modalities per target modality: weights softmax(logits[t]) over the present
    modalities other than t. A missing t is replaced by its mixture; a present t is pulled to it (the loss is
    the mixture's, with each modality's own stand-in as its anchor)."""

    def __init__(self, num_modalities: int, loss_kind: str = "invariant"):
        super().__init__(num_modalities, loss_kind)
        self.logits = nn.Parameter(torch.zeros(num_modalities, num_modalities))

    def forward(self, features: torch.Tensor, present: torch.Tensor) -> torch.Tensor:
        """features (B, M, F, ...), present (B, M) -> stand-ins (B, M, F, ...); a target with no other present
        modality gets zeros (never substituted: it is then the only present one)."""
        m = present.shape[1]
        sources = present[:, None, :] & ~torch.eye(m, dtype=torch.bool, device=present.device)  # (B, t, k)
        logits = self.logits.float().expand(present.shape[0], m, m).masked_fill(~sources, float("-inf"))
        weights = torch.softmax(logits, dim=2).nan_to_num(0.0).to(features.dtype)
        return torch.einsum("btk,bk...->bt...", weights, features)


class GaussianAnchor(nn.Module):
    """A per-channel N(mu_a, sigma_a^2) with sigma_a >= `sigma_floor`; with the invariant loss it lives in the
    units of the standardised features (per sample: minus the channel means, over the feature std)."""

    def __init__(self, channels: int, sigma_floor: float = 0.1, loss_kind: str = "invariant"):
        super().__init__()
        self.sigma_floor = sigma_floor
        self.loss_kind = loss_kind
        self.mu = nn.Parameter(torch.zeros(channels))
        # softplus(raw) + floor = 1 at the start: the anchor starts as N(0, 1)
        self.raw_sigma = nn.Parameter(torch.full((channels,), math.log(math.expm1(1.0 - sigma_floor))))

    def sigma(self) -> torch.Tensor:
        return self.sigma_floor + F.softplus(self.raw_sigma)

    def _units(self, features: torch.Tensor, present: torch.Tensor) -> tuple[torch.Tensor | float, torch.Tensor | float]:
        """(centre, scale) that standardise the features; (0, 1) for the raw loss."""
        if self.loss_kind == "raw":
            return 0.0, 1.0
        centre, variance = feature_statistics(features, present)
        return centre, _spatial(variance.add(_EPS).sqrt(), features.ndim)

    def forward(self, features: torch.Tensor, present: torch.Tensor) -> torch.Tensor:
        centre, scale = self._units(features, present)
        return (centre + scale * _per_channel(self.mu.float(), features.ndim)).to(features.dtype)

    def loss(self, features: torch.Tensor, present: torch.Tensor, eligible: torch.Tensor) -> torch.Tensor:
        centre, scale = self._units(features, present)
        z = (features.float() - centre) / scale
        mu = _per_channel(self.mu.float(), z.ndim)
        sigma = _per_channel(self.sigma().float(), z.ndim)
        nll = 0.5 * ((z - mu) / sigma).square() + torch.log(sigma) + 0.5 * math.log(2 * math.pi)
        return _masked_mean(nll.flatten(2).mean(2), present & eligible[:, None])

    def lower_bound(self) -> float:
        """The least value the loss can take: every feature at mu_a and sigma_a at its floor."""
        return math.log(self.sigma_floor) + 0.5 * math.log(2 * math.pi)


def make_anchor(kind: str, num_modalities: int, channels: int, sigma_floor: float, loss_kind: str) -> nn.Module:
    """The anchor of one of ANCHOR_KINDS (AlignmentForm has checked the kinds and the floor)."""
    if kind == "gaussian":
        return GaussianAnchor(channels, sigma_floor, loss_kind)
    return {"mixture": MixtureAnchor, "standin": StandinAnchor}[kind](num_modalities, loss_kind)


def grouped_block(num_modalities: int, channels_per_modality: int, conv_op: type[nn.Module],
                  norm_op: type[nn.Module] | None, norm_op_kwargs: dict | None, nonlin: type[nn.Module] | None,
                  nonlin_kwargs: dict | None) -> nn.Sequential:
    """The front stem's block: a 3x3(x3) convolution grouped by modality, its norm (per channel, so no mixing
    across modalities) and nonlinearity."""
    width = num_modalities * channels_per_modality
    layers = [conv_op(num_modalities, width, kernel_size=3, padding=1, groups=num_modalities)]
    if norm_op is not None:
        layers.append(norm_op(width, **(norm_op_kwargs or {})))
    if nonlin is not None:
        layers.append(nonlin(**(nonlin_kwargs or {})))
    return nn.Sequential(*layers)


def group_first_conv(block: nn.Module, num_modalities: int) -> nn.Module:
    """nnU-Net's first ConvDropoutNormReLU with its convolution grouped by modality (same kernel, stride,
    padding and bias; C0 / M output channels per modality), norm and nonlinearity kept."""
    conv = block.conv
    if conv.out_channels % num_modalities:
        raise ValueError(f"the first stage's {conv.out_channels} features cannot be split evenly among "
                         f"{num_modalities} modalities")
    grouped = type(conv)(num_modalities, conv.out_channels, conv.kernel_size, conv.stride, conv.padding,
                         conv.dilation, groups=num_modalities, bias=conv.bias is not None)
    block.conv = grouped
    block.all_modules[0] = grouped
    return block


class ModalityStem(nn.Module):
    """x (B, M, ...) -> (B, M * F, ...): per-modality features, missing modalities replaced by the anchor.

    In training (or with `retain`, e.g. for a frozen teacher whose features a student reads) `features`,
    `present`, `eligible` and `output` of the last forward pass are kept for the anchor loss and the student's
    latent term; in eval mode nothing is kept, so inference holds no extra activations. `loss_pool` averages
    the features over 2x2(x2) blocks before the loss: a distribution match needs no full resolution.
    """

    def __init__(self, num_modalities: int, channels_per_modality: int, anchor: str, block: nn.Module,
                 sigma_floor: float = 0.1, loss_kind: str = "invariant", loss_pool: int = 1):
        super().__init__()
        self.num_modalities, self.channels_per_modality, self.anchor_kind = num_modalities, channels_per_modality, anchor
        self.loss_kind, self.loss_pool = loss_kind, loss_pool
        self.block = block
        self.anchor = make_anchor(anchor, num_modalities, channels_per_modality, sigma_floor, loss_kind)
        self.retain = False
        self.features = self.present = self.eligible = self.output = None

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
        return torch.where(keep, features, self.anchor(features, present).to(features.dtype)).flatten(1, 2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        present = presence(x)
        features = self.split(x)
        output = self.substitute(features, present)
        if self.training or self.retain:
            self.present, self.features, self.eligible, self.output = present, features, informative(x), output
        else:
            self.present = self.features = self.eligible = self.output = None
        return output

    def alignment_loss(self) -> torch.Tensor:
        """The anchor loss over the present modalities of the last forward pass."""
        features = self.features
        if self.loss_pool > 1:
            features = block_mean(features, self.loss_pool)
        return self.anchor.loss(features, self.present, self.eligible)

    @torch.no_grad()
    def anchor_everywhere(self, x: torch.Tensor) -> torch.Tensor:
        """What the next layer would get for input x if every modality were replaced by the anchor (the bypass
        check's replacement); a mixture is mixed from the modalities that are present."""
        features, present = self.split(x), presence(x)
        return self.anchor(features, present).expand_as(features).flatten(1, 2)

    def compute_conv_feature_map_size(self, input_size) -> int:
        """For nnU-Net's memory estimate when the stem replaces the encoder's first block."""
        return self.block.compute_conv_feature_map_size(input_size)
