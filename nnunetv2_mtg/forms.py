"""The alignment forms of the MTG trainers (docs/design.md), read from a trainer's class attributes.

A form says where the representation is pulled onto an anchor:
- `aligned_stages`: encoder stages with a Gaussian head and the KL to N(0, I) (`(-1,)` the bottleneck,
  `"all"` every stage the decoder reads, skips included), with `free_bits` nats per channel free of cost;
- `stem_anchor`: per-modality features with a learnable anchor (`"mixture"`, `"standin"` or `"gaussian"`, see
  stem.py), placed by `stem_placement`: `"front"` a modality stem in front of the encoder with
  `stem_channels_per_modality` features per modality (default: the first stage's width divided among the
  modalities, at least 4), or `"first_block"` nnU-Net's own first convolution grouped by modality (the first
  stage's width divided among the modalities); `anchor_loss` `"invariant"` (when a form sets none) or `"raw"`
  (the scale-dependent loss; the default teacher's), `anchor_loss_pool` (average the features over blocks of that
  size before the loss), `anchor_sigma_floor` for the Gaussian anchor.
The shipped trainers use one of these each; a subclass may combine them. `read_form` turns the attributes into
an `AlignmentForm`, which checks them (the one place that does) at trainer start, before nnU-Net creates any
folder, so a typo in a user's subclass costs nothing.

Each form class below also carries its trainer's `lambda_align`; the weights are the ones the accuracy experiment
measured (docs/RESULTS.md).
"""
from __future__ import annotations

from dataclasses import dataclass, field, fields

from torch import nn

from nnunetv2_mtg.env import UserInputError
from nnunetv2_mtg.stem import ANCHOR_KINDS, LOSS_KINDS, ModalityStem, group_first_conv, grouped_block

PLACEMENTS = ("front", "first_block")


ATTRIBUTES = {"stages": "aligned_stages", "free_bits": "free_bits", "stem_anchor": "stem_anchor",
              "stem_channels": "stem_channels_per_modality", "sigma_floor": "anchor_sigma_floor",
              "placement": "stem_placement", "loss_kind": "anchor_loss", "loss_pool": "anchor_loss_pool"}
"""Each field of AlignmentForm and the trainer class attribute that sets it."""


@dataclass(frozen=True)
class AlignmentForm:
    """One form on one encoder; it checks itself when made, and a wrong value raises UserInputError naming the
    attribute of `owner` (the trainer class) that set it. `stages` may be given as \"all\" or with negative indices
    (counted from the bottleneck); the form holds them sorted, in 0..len(widths) - 1."""

    stages: tuple[int, ...]  # encoder stages (>= 0) with a Gaussian head
    widths: tuple[int, ...]  # the encoder's features per stage
    free_bits: float = 0.0
    stem_anchor: str | None = None
    stem_channels: int | None = None  # per modality; None without a stem
    sigma_floor: float = 0.1
    placement: str = "front"
    loss_kind: str = "invariant"
    loss_pool: int = 1
    owner: str = field(default="AlignmentForm", compare=False, repr=False)

    def __post_init__(self) -> None:
        n = len(self.widths)
        stages = self.stages
        if isinstance(stages, str):
            if stages != "all":
                self._refuse("stages", f'say "all" or give a tuple of encoder stage indices (0..{n - 1}, or -1 for '
                                       "the bottleneck).")
            stages = range(n)
        try:
            stages = {int(s) for s in stages}
        except (TypeError, ValueError):
            self._refuse("stages", 'give a tuple of encoder stage indices or "all".')
        bad = sorted(s for s in stages if not -n <= s < n)
        if bad:
            raise UserInputError(f"{self.owner}.aligned_stages: stage(s) {bad} do not exist in this {n}-stage encoder; "
                                 f"valid are 0..{n - 1} (or -1..-{n} counted from the bottleneck) or \"all\".")
        object.__setattr__(self, "stages", tuple(sorted({s % n for s in stages})))
        if self.free_bits < 0:
            self._refuse("free_bits", "must be >= 0 (nats per channel).")
        if self.stem_anchor is not None and self.stem_anchor not in ANCHOR_KINDS:
            self._refuse("stem_anchor", f"unknown anchor kind; known are {', '.join(map(repr, ANCHOR_KINDS))} (or "
                                        "None for no modality stem).")
        if self.sigma_floor <= 0:
            self._refuse("sigma_floor", "must be > 0, or the Gaussian anchor's loss has no lower bound.")
        if self.placement not in PLACEMENTS:
            self._refuse("placement", f"known are {', '.join(map(repr, PLACEMENTS))}.")
        if self.loss_kind not in LOSS_KINDS:
            self._refuse("loss_kind", f"known are {', '.join(map(repr, LOSS_KINDS))}.")
        if not isinstance(self.loss_pool, int) or self.loss_pool < 1:
            self._refuse("loss_pool", "must be an integer >= 1 (1: no pooling).")
        if self.stem_channels is not None and self.stem_channels < 1:
            self._refuse("stem_channels", "must be >= 1.")

    def _refuse(self, name: str, why: str) -> None:
        raise UserInputError(f"{self.owner}.{ATTRIBUTES[name]} = {getattr(self, name)!r}: {why}")

    @property
    def name(self) -> str:
        parts = []
        if self.stem_anchor:
            where = "stem" if self.placement == "front" else "first-block"
            parts.append(f"{where}-{self.stem_anchor}" + ("-raw-loss" if self.loss_kind == "raw" else ""))
        if self.stages == tuple(range(len(self.widths))):
            parts.append("all-stages")
        elif self.stages == (len(self.widths) - 1,):
            parts.append("bottleneck")
        elif self.stages:
            parts.append("stages-" + ",".join(map(str, self.stages)))
        return "+".join(parts) or "none"

    @property
    def structure(self) -> tuple:
        """What a student's latent terms need to equal its teacher's."""
        return self.stages, self.stem_anchor, self.stem_channels, self.placement


def read_form(trainer_class: type, arch_kwargs: dict, num_modalities: int) -> AlignmentForm:
    """The form a trainer class asks for on a network of these plans (its attributes, ATTRIBUTES, with the form's
    defaults); UserInputError naming the class and attribute when it cannot be built. Classes without the attributes
    (stock, dropout, KD) have form none."""
    who = trainer_class.__name__
    anchor = getattr(trainer_class, "stem_anchor", None)
    placement = getattr(trainer_class, "stem_placement", "front")
    channels = None
    first = int(arch_kwargs["features_per_stage"][0])
    if anchor is not None and placement == "first_block":
        if first % num_modalities:
            raise UserInputError(f"{who}: stem_placement 'first_block' splits the first stage's {first} features "
                                 f"among the {num_modalities} modalities, which does not divide evenly. Use plans "
                                 f"whose first stage has a multiple of {num_modalities} features, or the front "
                                 f"stem (stem_placement = 'front').")
        channels = first // num_modalities
    elif anchor is not None:
        channels = getattr(trainer_class, "stem_channels_per_modality", None) or max(4, first // num_modalities)
    defaults = {f.name: f.default for f in fields(AlignmentForm)}
    return AlignmentForm(getattr(trainer_class, "aligned_stages", ()),
                         tuple(int(w) for w in arch_kwargs["features_per_stage"]),
                         float(getattr(trainer_class, "free_bits", defaults["free_bits"])), anchor,
                         None if channels is None else int(channels),
                         float(getattr(trainer_class, "anchor_sigma_floor", defaults["sigma_floor"])), placement,
                         getattr(trainer_class, "anchor_loss", defaults["loss_kind"]),
                         getattr(trainer_class, "anchor_loss_pool", defaults["loss_pool"]), owner=who)


def input_channels(form: AlignmentForm, num_modalities: int) -> int:
    """What nnU-Net's encoder takes: the modalities, or the stem's output when there is a stem."""
    if form.stem_anchor is None or form.placement == "first_block":
        return num_modalities
    return num_modalities * form.stem_channels


def wrap(form: AlignmentForm, network: nn.Module, num_modalities: int) -> nn.Module:
    """nnU-Net's network (built for `input_channels`) with the form's stem and heads around it."""
    from nnunetv2_mtg.alignment import AlignedUNet

    from nnunetv2_mtg.alignment import first_block

    stem = None
    if form.stem_anchor is not None:
        e = network.encoder
        if form.placement == "first_block":
            block = group_first_conv(first_block(e).convs[0], num_modalities)
        else:
            block = grouped_block(num_modalities, form.stem_channels, e.conv_op, e.norm_op, e.norm_op_kwargs,
                                  e.nonlin, e.nonlin_kwargs)
        stem = ModalityStem(num_modalities, form.stem_channels, form.stem_anchor, block, form.sigma_floor,
                            form.loss_kind, form.loss_pool)
    return AlignedUNet(network, form.stages, form.free_bits, stem, stem_inside=form.placement == "first_block")


class BottleneckForm:
    """Gaussian head and KL on the bottleneck only (the first form; measured to collapse, docs/measurements.md)."""

    aligned_stages = (-1,)
    free_bits = 0.0
    stem_anchor = None
    lambda_align = 0.1


class AllStagesForm:
    """Gaussian heads and KL on every encoder stage the decoder reads, each channel with free bits."""

    aligned_stages = "all"
    free_bits = 0.5
    stem_anchor = None
    lambda_align = 0.1


class MixtureStem:
    """Modality stem in front of the encoder; a missing modality is replaced by the learnable mixture of the present
    ones. The loss is the form's (below)."""

    aligned_stages = ()
    free_bits = 0.0
    stem_anchor = "mixture"
    stem_placement = "front"
    lambda_align = 0.1


class MixtureStemForm(MixtureStem):
    """The mixture stem with the scale-invariant loss: rescaling the features cannot lower it."""

    anchor_loss = "invariant"


class MixtureStemRawLossForm(MixtureStem):
    """The mixture stem with the scale-dependent loss (mean squared distance), the default form. Its falling loss is
    no evidence of alignment (shrinking the features lowers it); the gap check (`nnUNetv2_mtg_gap`) is."""

    anchor_loss = "raw"


class StandinStemForm(MixtureStemForm):
    """Modality stem; each missing modality is replaced by its own learnable mixture of the present ones."""

    stem_anchor = "standin"


class FirstBlockForm:
    """nnU-Net's first convolution grouped by modality; its output is aligned to the mixture anchor (the loss on a
    2x average-pooled copy) and a missing modality's share is replaced by the anchor; the rest is stock."""

    aligned_stages = ()
    stem_anchor = "mixture"
    stem_placement = "first_block"
    anchor_loss = "invariant"
    anchor_loss_pool = 2
    lambda_align = 0.1


class GaussianStemForm:
    """Modality stem; every modality's features are pulled onto a learnable per-channel Gaussian, a missing
    modality is replaced by its mean."""

    aligned_stages = ()
    stem_anchor = "gaussian"
    stem_placement = "front"
    anchor_loss = "invariant"
    lambda_align = 0.1


TEACHER_PREFIX, STUDENT_PREFIX = "nnUNetTrainerMTGTeacher", "nnUNetTrainerMTGStudent"

# The shipped forms besides the default, by the suffix of their trainers' names: each gets
# nnUNetTrainerMTGTeacher<suffix>, its student nnUNetTrainerMTGStudent<suffix> and their schedule variants
# (trainers/); the accuracy experiment's lineup is read from here too. The default form (MixtureStemRawLossForm) is
# the plain nnUNetTrainerMTGTeacher / nnUNetTrainerMTGStudent, under no second name.
FORMS: dict[str, type] = {"Bottleneck": BottleneckForm, "AllStages": AllStagesForm, "Mixture": MixtureStemForm,
                          "Gaussian": GaussianStemForm, "Standin": StandinStemForm, "FirstBlock": FirstBlockForm}


def form_trainer(base: type, prefix: str, suffix: str, form: type, module: str, **attributes) -> type:
    """The class `<prefix><suffix>`: the form mixin before `base` (only `base` where it has the form already, as the
    default teachers do), with `attributes`, as if written in `module`."""
    name = prefix + suffix
    bases = (base,) if issubclass(base, form) else (form, base)
    return type(name, bases, {"__doc__": form.__doc__, **attributes, "__module__": module, "__qualname__": name})
