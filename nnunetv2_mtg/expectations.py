"""What an evaluation says to expect from a model per modality subset, kept beside the model.

`nnUNetv2_mtg_evaluate` writes `mtg_subsets.json` into the model's results folder (mean Dice and HD95 per region
for each subset it ran, the cases and folds they came from); `nnUNetv2_mtg_predict` reads it to tell, per case,
the Dice to expect for that case's subset and to warn where a region is expected far below the full input.
"""
from __future__ import annotations

import json
import os
import time

from nnunetv2_mtg.atomic import write_json

SUMMARY_FILE = "mtg_subsets.json"
WEAK_POINTS = 10.0  # Dice points below the full input that earn a warning


def write_subset_summary(model_folder: str, summary: dict, subsets: list, regions: list[str], folds: list,
                         cases: int, source: str, checkpoint: str) -> str:
    """summary: {subset name: {region: (dice, hd95)}} from report.summarise; subsets: modalities.Subset list."""
    doc = {"written_by": "nnUNetv2_mtg_evaluate", "written": time.strftime("%Y-%m-%d %H:%M"), "folds": list(folds),
           "checkpoint": checkpoint, "cases": cases, "case_source": source, "regions": list(regions),
           "subsets": {s.name: {"mask": list(s.mask),
                                "dice": {r: round(summary[s.name][r][0], 5) for r in regions},
                                "hd95": {r: round(summary[s.name][r][1], 3) for r in regions}} for s in subsets}}
    path = os.path.join(model_folder, SUMMARY_FILE)
    write_json(path, doc)
    return path


def read_subset_summary(model_folder: str) -> dict | None:
    path = os.path.join(model_folder, SUMMARY_FILE)
    if not os.path.isfile(path):
        return None
    with open(path) as f:
        return json.load(f)


def channel_label(dataset_name: str, canonical: str) -> str:
    """A channel as the dataset names it, with the canonical name beside it where they differ: 'T1C (T1ce)'."""
    return dataset_name if dataset_name.casefold() == canonical.casefold() else f"{dataset_name} ({canonical})"


def expectation(doc: dict, mask: tuple[bool, ...], missing: list[str]) -> tuple[str, str]:
    """(expected Dice per region for this subset, warning) from an evaluation summary; the warning names each
    region expected more than WEAK_POINTS below the full input. ('', reason) when the subset was not evaluated."""
    by_mask = {tuple(v["mask"]): v for v in doc["subsets"].values()}
    this, full = by_mask.get(tuple(mask)), by_mask.get(tuple([True] * len(mask)))
    if this is None:
        return "", "this subset is not in the model's evaluation (mtg_subsets.json): no expected Dice"
    expected = " / ".join(f"{r} {100 * d:.0f}" for r, d in this["dice"].items())
    if full is None or full is this:
        return expected, ""
    weak = [f"expected {r} Dice {100 * d:.0f} vs {100 * full['dice'][r]:.0f} with all modalities"
            for r, d in this["dice"].items() if 100 * (full["dice"][r] - d) > WEAK_POINTS]
    return expected, (f"{' + '.join(missing)} missing: " + "; ".join(weak)) if weak else ""
