"""Which input channel is which MRI modality, and the non-empty modality subsets in papers' order.

Every missing-modality result is a table over the 2^M - 1 non-empty subsets of the channels. The
channels of an nnU-Net dataset are named in its dataset.json (`channel_names`); the BraTS naming
conventions in use are recognised case-insensitively. Any other dataset states its mapping in its
dataset.json under the key `mtg_modalities`: one display name per channel index, e.g.
`"mtg_modalities": {"0": "T1", "1": "T1ce", "2": "T2", "3": "FLAIR"}` or `{"0": "ADC", "1": "DWI"}`.
"""
from __future__ import annotations

import itertools
import re
from dataclasses import dataclass

from nnunetv2_mtg.env import UserInputError

BRATS_MODALITIES = ("T1", "T1ce", "T2", "FLAIR")
MAPPING_KEY = "mtg_modalities"

# normalised spelling (lower case, no separators) -> BraTS modality
_ALIASES = {
    "T1": ("t1", "t1n", "t1w", "t1native", "t1pre", "t1precontrast", "native"),
    "T1ce": ("t1ce", "t1c", "t1gd", "t1post", "t1postcontrast", "t1contrast", "t1wce", "t1cwe", "t1km", "t1plusc",
             "ce", "t1enhanced"),
    "T2": ("t2", "t2w"),
    "FLAIR": ("flair", "t2f", "t2flair", "t2wflair", "flairt2"),
}
_LOOKUP = {alias: name for name, aliases in _ALIASES.items() for alias in aliases}

# The 15 BraTS subsets in the row order of the RFNet / mmFormer / M3AE tables: singles, pairs,
# triples, then the full set.
_BRATS_PAPER_ORDER = (
    ("T2",), ("T1ce",), ("T1",), ("FLAIR",),
    ("T1ce", "T2"), ("T1", "T1ce"), ("T1", "FLAIR"), ("T1", "T2"), ("T2", "FLAIR"), ("T1ce", "FLAIR"),
    ("T1", "T1ce", "FLAIR"), ("T1", "T2", "FLAIR"), ("T1ce", "T2", "FLAIR"), ("T1", "T1ce", "T2"),
    ("T1", "T1ce", "T2", "FLAIR"),
)


def normalise(name: str) -> str:
    """A name as it is compared: lower case, without spaces and separators (`T1-ce`, `t1_ce` and `T1ce` are one)."""
    return re.sub(r"[\s_\-+./()]", "", str(name).lower())


def modality_key(name: str) -> str:
    """The normalised BraTS modality a name or alias stands for (`t1c`, `t1gd` -> `t1ce`); other names normalised."""
    n = normalise(name)
    return normalise(_LOOKUP.get(n, n))


@dataclass(frozen=True)
class Subset:
    """A non-empty set of present modalities: `mask[c]` is True when input channel c is present."""

    name: str
    mask: tuple[bool, ...]

    @property
    def is_full(self) -> bool:
        return all(self.mask)


def channel_names(dataset_json: dict) -> list[str]:
    """The channels as dataset.json names them, in channel order."""
    channels = dataset_json["channel_names"]
    return [channels[k] for k in sorted(channels, key=int)]


def modality_names(dataset_json: dict) -> list[str]:
    """One modality name per input channel, in channel order.

    Raises UserInputError (listing the channel names and the mapping to add) when the channels are
    not recognisable, and when there are fewer than two channels (nothing could be missing).
    """
    channels = dataset_json.get("channel_names") or dataset_json.get("modality")
    if not channels:
        raise UserInputError("dataset.json has no channel_names; is this an nnU-Net v2 dataset?")
    order = sorted(channels, key=int)
    if len(order) < 2:
        raise UserInputError(f"dataset has {len(order)} input channel ({dict(channels)}): missing-modality "
                             f"training needs at least two channels, one of which can be absent.")
    explicit = dataset_json.get(MAPPING_KEY)
    if explicit is not None:
        if sorted(explicit, key=int) != order or len(set(explicit.values())) != len(order) \
                or not all(isinstance(v, str) and v for v in explicit.values()):
            raise UserInputError(f"dataset.json key '{MAPPING_KEY}' must give one distinct, non-empty name per channel "
                                 f"index {order}; got {explicit}.")
        return [explicit[k] for k in order]
    names = [_LOOKUP.get(normalise(channels[k])) for k in order]
    if None in names or len(set(names)) != len(names):
        example = {k: (n or "<name>") for k, n in zip(order, names)}
        raise UserInputError(
            f"cannot tell which MRI modality each channel is: channel_names = {dict(channels)}. "
            f"Known names are {', '.join(BRATS_MODALITIES)} and their spellings (t1n, t1c, T1Gd, t2w, t2f, ...). "
            f"Add the mapping to dataset.json, e.g. \"{MAPPING_KEY}\": {example}".replace("'", '"'))
    return names


def enumerate_subsets(names: list[str]) -> list[Subset]:
    """All 2^M - 1 non-empty subsets; BraTS in the papers' row order, others by size then channel order."""
    if sorted(names) == sorted(BRATS_MODALITIES):
        combos = [tuple(names.index(m) for m in combo) for combo in _BRATS_PAPER_ORDER]
    else:
        combos = [c for k in range(1, len(names) + 1) for c in itertools.combinations(range(len(names)), k)]
    subsets = []
    for combo in combos:
        channels = sorted(combo)
        if sorted(names) == sorted(BRATS_MODALITIES):  # names in the conventional T1, T1ce, T2, FLAIR order
            channels = sorted(combo, key=lambda c: BRATS_MODALITIES.index(names[c]))
        subsets.append(Subset("+".join(names[c] for c in channels),
                              tuple(c in combo for c in range(len(names)))))
    return subsets


def find_subsets(subsets: list[Subset], wanted: list[str]) -> list[Subset]:
    """Look subsets up by name, case- and order-insensitively ("flair+t1ce" finds "T1ce+FLAIR")."""
    by_key = {frozenset(normalise(p) for p in s.name.split("+")): s for s in subsets}
    full = [s for s in subsets if s.is_full]
    out = []
    for w in wanted:
        if normalise(w) in ("full", "all"):
            out += full
            continue
        key = frozenset(_canonical(p, subsets) for p in w.split("+"))
        if key not in by_key:
            raise UserInputError(f"unknown modality subset '{w}'. Valid subsets: {', '.join(s.name for s in subsets)}"
                                 f" (or 'full').")
        out.append(by_key[key])
    return out


def _canonical(part: str, subsets: list[Subset]) -> str:
    """Normalised modality name of one part of a subset name, accepting BraTS aliases."""
    n = normalise(part)
    present = {normalise(p) for s in subsets for p in s.name.split("+")}
    if n in present:
        return n
    alias = _LOOKUP.get(n)
    return normalise(alias) if alias is not None else n
