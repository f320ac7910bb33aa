"""Anchor alignment: Gaussian heads on encoder stages of nnU-Net's U-Nets, the KL to N(0, I), and the
wrapper that also puts a modality stem (stem.py) in front of the encoder.

The wrapper keeps nnU-Net's `encoder` and `decoder` as its own direct submodules, so state_dict
keys stay those of the stock network (plus `align.*` and `stem.*`) and nnU-Net's
`set_deep_supervision_enabled` (which sets `network.decoder.deep_supervision`) keeps working.
"""
from __future__ import annotations

import numpy as np
import torch
from torch import nn

from nnunetv2_mtg.stem import ModalityStem

SUPPORTED_NETWORKS = ("PlainConvUNet", "ResidualEncoderUNet")


class AlignmentHead(nn.Module):
    """Two 1x1(x1) convolutions: features h -> (mu, log sigma^2). Starts as mu = h, sigma = 1, so an
    untrained head passes the features through (plus unit noise in training, the anchor's scale)."""

    def __init__(self, channels: int, conv_op: type[nn.Module]):
        super().__init__()
        self.mu = conv_op(channels, channels, kernel_size=1)
        self.logvar = conv_op(channels, channels, kernel_size=1)
        with torch.no_grad():
            self.mu.weight.zero_()
            self.mu.weight.view(channels, channels).copy_(torch.eye(channels))
            self.mu.bias.zero_()
            self.logvar.weight.zero_()
            self.logvar.bias.zero_()

    def forward(self, h: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        return self.mu(h), self.logvar(h)


def kl_to_standard_normal(mu: torch.Tensor, logvar: torch.Tensor, free_bits: float = 0.0) -> torch.Tensor:
    """KL(N(mu, sigma^2) || N(0, I)) in closed form: per channel averaged over batch and voxels, each channel's
    value raised to at least `free_bits` nats (Kingma et al. 2016), then averaged over channels. With free bits
    a stage may keep that much information per channel at no cost, so the KL cannot be satisfied only by
    emptying the stage; with 0 it is the plain mean over batch, channels and voxels."""
    mu, logvar = mu.float(), logvar.float()
    kl = 0.5 * (mu.square() + logvar.exp() - 1.0 - logvar)
    return kl.transpose(0, 1).flatten(1).mean(1).clamp_min(free_bits).mean()


def kl_between_gaussians(mu_p: torch.Tensor, logvar_p: torch.Tensor,
                         mu_q: torch.Tensor, logvar_q: torch.Tensor) -> torch.Tensor:
    """KL(N(mu_p, var_p) || N(mu_q, var_q)) in closed form, elementwise diagonal, averaged."""
    mu_p, logvar_p, mu_q, logvar_q = (t.float() for t in (mu_p, logvar_p, mu_q, logvar_q))
    return 0.5 * (logvar_q - logvar_p + (logvar_p.exp() + (mu_p - mu_q).square()) / logvar_q.exp() - 1.0).mean()


def latent_channels(features_per_stage: list[int], stages: tuple[int, ...]) -> dict[int, int]:
    """{stage index >= 0: channels} of the aligned stages (negative indices count from the bottleneck)."""
    n = len(features_per_stage)
    if any(not -n <= s < n for s in stages):
        raise ValueError(f"aligned stages {stages} out of range for a {n}-stage encoder")
    return {s % n: features_per_stage[s] for s in sorted({s % n for s in stages})}


class AlignedUNet(nn.Module):
    """nnU-Net's U-Net with alignment heads on chosen encoder stages (negative = from the bottleneck) and,
    optionally, a modality stem in front of its encoder (which then takes the stem's width as input).

    In training the decoder consumes z = mu + sigma * eps at an aligned stage, in eval z = mu; other
    skips are unchanged. `latents` holds {stage: (mu, logvar)} of the last forward pass, for the
    losses and the modality-gap report.
    """

    def __init__(self, network: nn.Module, stages: tuple[int, ...] = (-1,), free_bits: float = 0.0,
                 stem: ModalityStem | None = None, stem_inside: bool = False):
        super().__init__()
        name = type(network).__name__
        if name not in SUPPORTED_NETWORKS:
            raise ValueError(f"the alignment wrapper does not know the network class {name} (from the plans' "
                             f"network_class_name). Supported: {', '.join(SUPPORTED_NETWORKS)}.")
        self.encoder = network.encoder
        self.decoder = network.decoder
        self.stem_in_front = stem is not None and not stem_inside
        if stem_inside:
            # the stem is the encoder's first block (state_dict: encoder.*); this is a reference, not a submodule
            first_block(self.encoder).convs[0] = stem
            self.__dict__["stem"] = stem
        else:
            self.stem = stem
        channels = latent_channels(self.encoder.output_channels, stages)
        self.stages = tuple(channels)
        self.free_bits = free_bits
        self.align = nn.ModuleDict({str(s): AlignmentHead(c, self.encoder.conv_op) for s, c in channels.items()})
        self.latents: dict[int, tuple[torch.Tensor, torch.Tensor]] = {}
        self._kl: torch.Tensor | None = None

    def forward(self, x: torch.Tensor):
        if self.stem_in_front:
            x = self.stem(x)
        skips = list(self.encoder(x))
        latents = {}
        for s in self.stages:
            mu, logvar = self.align[str(s)](skips[s])
            latents[s] = (mu, logvar)
            if self.training:
                skips[s] = mu + torch.exp(0.5 * logvar) * torch.randn_like(mu)
            else:
                skips[s] = mu
        self.latents = latents
        # in training the KL is computed here, inside the forward that nnU-Net torch.compiles on CUDA,
        # so its elementwise kernels are fused with the heads instead of launched one by one
        self._kl = self._kl_to_anchor() if self.training and self.stages else None
        return self.decoder(skips)

    def _kl_to_anchor(self) -> torch.Tensor:
        return torch.stack([kl_to_standard_normal(mu, lv, self.free_bits) for mu, lv in self.latents.values()]).mean()

    def alignment_loss(self) -> torch.Tensor:
        """Mean over aligned stages of the KL of the last forward's latents to N(0, I)."""
        return self._kl if self._kl is not None else self._kl_to_anchor()

    def compute_conv_feature_map_size(self, input_size):
        stem = self.stem.out_channels * int(np.prod(input_size)) if self.stem_in_front else 0
        return stem + self.encoder.compute_conv_feature_map_size(input_size) + \
            self.decoder.compute_conv_feature_map_size(input_size)


def first_block(encoder: nn.Module) -> nn.Module:
    """The StackedConvBlocks whose first ConvDropoutNormReLU sees the input: stage 0 of PlainConvUNet's encoder,
    the stem of ResidualEncoderUNet's."""
    if getattr(encoder, "stem", None) is not None:
        return encoder.stem
    return encoder.stages[0][-1]


def check_plans_network(plans: dict, configuration: str) -> None:
    """Fail before training starts (and before nnU-Net creates folders) on a network we cannot wrap."""
    from nnunetv2.utilities.plans_handling.plans_handler import PlansManager

    from nnunetv2_mtg.env import UserInputError

    name = PlansManager(plans).get_configuration(configuration).network_arch_class_name.rsplit(".", 1)[-1]
    if name not in SUPPORTED_NETWORKS:
        raise UserInputError(f"plans '{plans.get('plans_name')}' configuration '{configuration}' uses the network "
                             f"class {name}, which the alignment wrapper does not know. Supported: "
                             f"{', '.join(SUPPORTED_NETWORKS)} (nnUNetPlans, nnUNetResEncUNet*Plans).")


def unwrap(network: nn.Module) -> nn.Module:
    """The module under DDP and torch.compile wrappers, where `latents` is set."""
    network = getattr(network, "module", network)
    return getattr(network, "_orig_mod", network)
