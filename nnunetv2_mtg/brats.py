"""BraTS conventions: the challenge's file names, the meaning of a dataset's tumour labels, the challenge's labels.

File names as the challenge ships them, one folder per case or flat:
- 2023 and later: `BraTS-GLI-00001-000-t1n.nii.gz`, `-t1c`, `-t2w`, `-t2f` (and `-seg`, the label, ignored here);
- 2018-2021: `BraTS2021_00001_t1.nii.gz`, `_t1ce`, `_t2`, `_flair` (and `_seg`).
Tumour sub-regions: edema (ED / SNFH), necrosis or non-enhancing core (NCR / NETC) and enhancing tumour (ET). A
dataset says which of its labels is which either through nnU-Net's BraTS regions (Dataset137: regions whole
tumour, tumour core, enhancing tumour, nested) or by naming its labels (edema, SNFH, ED; necrosis, NCR, NETC,
non-enhancing; enhancing, ET, in the usual spellings). The challenge's labels: 2021: 1 NCR, 2 ED, 4 ET; 2023 and
later: 1 NETC, 2 SNFH, 3 ET. WT = all three, TC = necrosis + enhancing, ET = enhancing.
"""
from __future__ import annotations

import os
import re

import numpy as np

from nnunetv2_mtg.env import UserInputError
from nnunetv2_mtg.modalities import normalise

# file suffix -> BraTS modality name (those of modalities.BRATS_MODALITIES)
SUFFIXES = {"t1n": "T1", "t1c": "T1ce", "t2w": "T2", "t2f": "FLAIR",  # 2023+
            "t1": "T1", "t1ce": "T1ce", "t2": "T2", "flair": "FLAIR"}  # 2018-2021
LABEL_SUFFIX = "seg"
_NAME = re.compile(r"^(?P<case>.+?)[-_](?P<suffix>" + "|".join(sorted([*SUFFIXES, LABEL_SUFFIX], key=len, reverse=True))
                   + r")$", re.IGNORECASE)

SUBREGIONS = ("edema", "necrosis", "enhancing")
_SUBREGION_ALIASES = {
    "edema": ("edema", "oedema", "ed", "snfh", "peritumoraledema", "surroundingnonenhancingflairhyperintensity",
              "peritumoral edema"),
    "necrosis": ("necrosis", "ncr", "netc", "ncrnet", "nonenhancing", "nonenhancingtumor", "nonenhancingtumour",
                 "nonenhancingtumorcore", "nonenhancingtumourcore", "necrotic", "necroticcore", "necrotictumorcore",
                 "necrotictumourcore", "necrosisnonenhancing", "necroticnonenhancing"),
    "enhancing": ("enhancing", "et", "enhancingtumor", "enhancingtumour"),
}
_REGION_ALIASES = {"WT": ("wholetumor", "wholetumour", "wt"), "TC": ("tumorcore", "tumourcore", "tc"),
                   "ET": ("enhancingtumor", "enhancingtumour", "et")}
CHALLENGE_LABELS = {"2021": {"necrosis": 1, "edema": 2, "enhancing": 4},
                    "2023": {"necrosis": 1, "edema": 2, "enhancing": 3}}


_SUBREGION_LOOKUP = {normalise(a): k for k, aliases in _SUBREGION_ALIASES.items() for a in aliases}
_REGION_LOOKUP = {normalise(a): k for k, aliases in _REGION_ALIASES.items() for a in aliases}


def parse_name(file_name: str, ending: str) -> tuple[str, str] | None:
    """(case id, BraTS modality or 'seg') of a challenge file name, or None when it is not one."""
    if not file_name.endswith(ending):
        return None
    m = _NAME.match(file_name[: -len(ending)])
    if not m:
        return None
    suffix = m.group("suffix").lower()
    return m.group("case"), SUFFIXES.get(suffix, LABEL_SUFFIX)


def scan_folder(folder: str, ending: str) -> dict[str, dict[str, str]]:
    """{case id: {BraTS modality: path}} of a folder in the challenge's layout (one folder per case, or flat).
    Any other file is an error that lists the known suffixes; label files (`seg`) and hidden files are skipped."""
    known = ", ".join(f"-{s}" for s in list(SUFFIXES)[:4]) + " (2023+) or " + \
        ", ".join(f"_{s}" for s in list(SUFFIXES)[4:]) + f" (2018-2021), ending in {ending}"
    entries = []
    for name in sorted(os.listdir(folder)):
        path = os.path.join(folder, name)
        if name.startswith("."):
            continue
        if os.path.isdir(path):
            entries += [(os.path.join(path, f), f) for f in sorted(os.listdir(path)) if not f.startswith(".")]
        else:
            entries.append((path, name))
    cases: dict[str, dict[str, str]] = {}
    for path, name in entries:
        parsed = parse_name(name, ending)
        if parsed is None:
            raise UserInputError(f"{path} is not a BraTS file name this tool knows (--brats-names). Known modality "
                                 f"suffixes: {known}; label files end in -seg/_seg. Move it out of the input folder.")
        case, modality = parsed
        if modality == LABEL_SUFFIX:
            continue
        if modality in cases.setdefault(case, {}):
            raise UserInputError(f"case {case} has two {modality} files: {cases[case][modality]} and {path}")
        cases[case][modality] = path
    return cases


def subregion_labels(dataset_json: dict) -> dict[str, int]:
    """{"edema": label, "necrosis": label, "enhancing": label}: the values the dataset's segmentations (and
    nnU-Net's predictions) use for each tumour sub-region. UserInputError saying what to add when dataset.json does
    not tell."""
    labels = dataset_json["labels"]
    order = dataset_json.get("regions_class_order")
    if order:
        regions = {k: tuple(v) if isinstance(v, (list, tuple)) else (v,) for k, v in labels.items()
                   if normalise(k) != "background"}
        named = {_REGION_LOOKUP.get(normalise(k)): (i, set(v)) for i, (k, v) in enumerate(regions.items())}
        if all(r in named for r in ("WT", "TC", "ET")) and named["ET"][1] < named["TC"][1] < named["WT"][1]:
            # the value nnU-Net writes for a voxel in a region (and in no later one) is that region's class order
            return {"edema": order[named["WT"][0]], "necrosis": order[named["TC"][0]],
                    "enhancing": order[named["ET"][0]]}
        raise UserInputError(f"dataset.json trains on regions {list(regions)}, but they are not the nested BraTS "
                             f"regions whole tumor ⊃ tumor core ⊃ enhancing tumor, so the tumour sub-regions cannot be "
                             f"told apart. Name them as Dataset137 does: \"whole tumor\", \"tumor core\", "
                             f"\"enhancing tumor\".")
    found = {}
    for name, value in labels.items():
        kind = _SUBREGION_LOOKUP.get(normalise(name))
        if kind is not None:
            found[kind] = int(value if not isinstance(value, (list, tuple)) else value[0])
    missing = [k for k in SUBREGIONS if k not in found]
    if missing:
        raise UserInputError(f"cannot tell the tumour sub-regions from dataset.json labels {labels} (missing: "
                             f"{', '.join(missing)}). Name the labels, e.g. \"labels\": {{\"background\": 0, "
                             f"\"edema\": 1, \"necrosis\": 2, \"enhancing\": 3}} (SNFH, NETC, ET and the other usual "
                             f"spellings work too).")
    return found


def challenge_lookup(dataset_json: dict, year: str) -> np.ndarray:
    """A table t with t[dataset label] = challenge label (`year` 2021 or 2023; 2024 and later use 2023's)."""
    if year not in CHALLENGE_LABELS:
        raise UserInputError(f"--brats-labels {year}: say 2021 (labels 1/2/4) or 2023 (labels 1/2/3, also 2024+)")
    meaning = subregion_labels(dataset_json)
    table = np.zeros(max(meaning.values()) + 1, dtype=np.uint8)
    for kind, label in meaning.items():
        table[label] = CHALLENGE_LABELS[year][kind]
    return table


def brats_regions(dataset_json: dict) -> list[tuple[str, tuple[int, ...]]] | None:
    """WT, TC and ET as tuples of a label-based dataset's labels, when its labels name the tumour sub-regions."""
    try:
        m = subregion_labels(dataset_json)
    except UserInputError:
        return None
    return [("WT", (m["edema"], m["necrosis"], m["enhancing"])), ("TC", (m["necrosis"], m["enhancing"])),
            ("ET", (m["enhancing"],))]
