"""Dice and HD95 per region, with the BraTS conventions for empty masks.

Surface distances come from MONAI (`monai.metrics.compute_hausdorff_distance`, percentile 95,
symmetric: the larger of the two directed 95th percentiles, in mm via the voxel spacing): a maintained,
widely used implementation, already used by BraTS pipelines, that runs on numpy or torch. Masks are
cropped to the bounding box of both masks plus a margin first, which leaves the distances unchanged and
keeps full-size BraTS volumes fast.

Empty masks (the BraTS convention): both empty -> Dice 1, HD95 0; exactly one empty -> Dice 0,
HD95 373.13 (the diagonal of the 240 x 240 x 155 BraTS volume in mm).
"""
from __future__ import annotations

import numpy as np

HD95_ONE_EMPTY = 373.13
BRATS_REGION_NAMES = {"whole tumor": "WT", "tumor core": "TC", "enhancing tumor": "ET"}


def dice(pred: np.ndarray, ref: np.ndarray) -> float:
    p, r = pred.astype(bool), ref.astype(bool)
    total = int(p.sum()) + int(r.sum())
    if total == 0:
        return 1.0
    return 2.0 * int(np.logical_and(p, r).sum()) / total


def _crop_to_both(pred: np.ndarray, ref: np.ndarray, margin: int = 2) -> tuple[np.ndarray, np.ndarray]:
    coords = np.argwhere(pred | ref)
    lo = np.maximum(coords.min(0) - margin, 0)
    hi = coords.max(0) + margin + 1
    box = tuple(slice(a, b) for a, b in zip(lo, hi))
    return pred[box], ref[box]


def hd95(pred: np.ndarray, ref: np.ndarray, spacing: tuple[float, ...]) -> float:
    """Symmetric 95th-percentile Hausdorff distance in mm (MONAI), with the empty-mask conventions."""
    from monai.metrics import compute_hausdorff_distance

    p, r = pred.astype(bool), ref.astype(bool)
    has_p, has_r = bool(p.any()), bool(r.any())
    if not has_p and not has_r:
        return 0.0
    if has_p != has_r:
        return HD95_ONE_EMPTY
    p, r = _crop_to_both(p, r)
    value = compute_hausdorff_distance(p[None, None], r[None, None], include_background=True, percentile=95,
                                       spacing=[float(s) for s in spacing])
    return float(value.item())


def region_names(dataset_json: dict, label_manager) -> list[tuple[str, object]]:
    """(display name, label or region) pairs to evaluate: the dataset's regions (WT/TC/ET for BraTS) when
    it trains on regions, else each foreground label; a label-based dataset whose labels name the tumour
    sub-regions also gets the BraTS regions WT, TC, ET (first, as every BraTS paper reports them), its labels
    then appear as `label <name>`."""
    from nnunetv2_mtg.brats import brats_regions

    names = {}
    for name, value in dataset_json["labels"].items():
        key = tuple(value) if isinstance(value, (list, tuple)) else value
        if isinstance(key, tuple) and len(key) == 1 and not label_manager.has_regions:
            key = key[0]
        names[key] = BRATS_REGION_NAMES.get(name.lower(), name)
    if label_manager.has_regions:
        return [(names.get(tuple(r), str(r)), tuple(r)) for r in label_manager.foreground_regions]
    per_label = [(names.get(lbl, str(lbl)), lbl) for lbl in label_manager.foreground_labels]
    brats = brats_regions(dataset_json)
    return brats + [(f"label {n}", lbl) for n, lbl in per_label] if brats else per_label


def mean_regions(regions: list[str]) -> list[str]:
    """The regions a "mean" Dice averages: WT, TC and ET where a dataset has them, else every region."""
    brats = [r for r in regions if r in BRATS_REGION_NAMES.values()]
    return brats if len(brats) == 3 else list(regions)


def score_case(prediction: np.ndarray, reference: np.ndarray, regions: list[tuple[str, object]],
               spacing: tuple[float, ...]) -> dict[str, tuple[float, float]]:
    """{region name: (dice, hd95)} of one predicted label map against the reference label map."""
    from nnunetv2.evaluation.evaluate_predictions import region_or_label_to_mask

    out = {}
    for name, region in regions:
        p = region_or_label_to_mask(prediction, region)
        r = region_or_label_to_mask(reference, region)
        out[name] = (dice(p, r), hd95(p, r, spacing))
    return out


LESIONWISE_INSTALL = ("--lesionwise needs the challenge's own metrics package (brats-evaluation, built on panoptica): "
                      "pip install 'nnunetv2-mtg[brats]'")


def lesionwise_scorer():
    """(prediction, reference, spacing) -> {WT/TC/ET: (lesion-wise Dice, lesion-wise HD95)} with the BraTS
    challenge's own package and its bundled glioma configuration (labels 1 NETC, 2 SNFH, 3 ET; matching of
    connected components). The values are those its result parser reports as lesionwise_dsc_mean and
    lesionwise_hd95_mean; a region without lesions in both maps counts as Dice 1 / HD95 0, and an unmatched HD95
    as the challenge's penalty 373.13, as for the voxel-wise scores."""
    try:
        from brats_evaluation import config_path
        from panoptica import Panoptica_Evaluator
    except ImportError:
        from nnunetv2_mtg.env import UserInputError

        raise UserInputError(LESIONWISE_INSTALL) from None
    evaluator = Panoptica_Evaluator.load_from_config(str(config_path("gli")))
    groups = {"WT": "wt", "TC": "tc", "ET": "et"}

    def score(prediction: np.ndarray, reference: np.ndarray, spacing: tuple[float, ...]) -> dict:
        results = evaluator.evaluate(prediction, reference, voxelspacing=tuple(float(s) for s in spacing),
                                     skip_groups=["netc", "snfh", "rc"], verbose=False)
        out = {}
        for region, group in groups.items():
            r = results[group].to_dict()
            if not r.get("n_ref_instances") and not r.get("n_pred_instances"):
                out[region] = (1.0, 0.0)
                continue
            d, h = r.get("sq_dsc"), r.get("sq_hd95")
            d = 0.0 if d is None or not np.isfinite(d) else float(d)
            h = HD95_ONE_EMPTY if h is None or not np.isfinite(h) else float(h)
            out[region] = (d, h)
        return out

    return score
