"""BraTS-like phantom dataset in nnU-Net raw format, built from the MNI152 template nilearn ships.

Why a phantom: the method is about which modality shows which tumour sub-region. Real BraTS data
cannot be redistributed, so every test and demo runs on cases that keep that property: real brain
anatomy (MNI152 grey/white matter maps, per-case affine + elastic deformation, mass effect), and
synthetic gliomas whose sub-regions appear where they appear on real scans (enhancing rim bright
only on T1ce, necrosis dark on T1/T1ce and bright on T2, edema bright on T2/FLAIR, CSF bright on
T2 and dark on FLAIR). Hence a missing T1ce costs enhancing-tumour accuracy, as on BraTS.

The layout, channel names and label/region definitions copy nnU-Net's Dataset137_BraTS2021.
"""
from __future__ import annotations

import argparse
import json
import multiprocessing
import os
import shutil
import sys
import tempfile
from dataclasses import dataclass
from functools import lru_cache

import numpy as np
import SimpleITK as sitk
from scipy import ndimage
from tqdm import tqdm

from nnunetv2_mtg.env import UserInputError, require_env_folder

DATASET_NAME = "BraTSPhantom"
CHANNEL_NAMES = {"0": "T1", "1": "T1ce", "2": "T2", "3": "Flair"}
LABELS = {"background": 0, "whole tumor": [1, 2, 3], "tumor core": [2, 3], "enhancing tumor": [3]}
# label values in the written segmentations (nnU-Net's Dataset137 convention)
EDEMA, NECROSIS, ENHANCING = 1, 2, 3
DEFAULT_SPACING = 3.0  # mm; brain ~50x62x52 voxels, so a 48^3 patch covers most of it on a CPU

# Mean intensity of each tissue per modality (T1, T1ce, T2, FLAIR), in units of white matter on T1.
# Rows: the tissue classes below. Enhancing rim: bright only on T1ce, close to edema elsewhere, so
# without T1ce it is hard to tell from edema; non-enhancing core: no T1ce uptake at all.
TISSUES = ("csf", "gm", "wm", "edema", "necrosis", "non_enhancing", "enhancing")
TISSUE_MEANS = np.array([
    # T1   T1ce  T2    FLAIR
    [0.25, 0.25, 1.50, 0.15],  # CSF: bright T2, dark FLAIR
    [0.65, 0.68, 0.85, 0.80],  # grey matter
    [0.95, 0.97, 0.60, 0.65],  # white matter
    [0.55, 0.57, 1.20, 1.25],  # edema: mildly dark T1, bright T2/FLAIR
    [0.35, 0.33, 1.35, 0.75],  # necrosis: dark T1/T1ce, bright T2
    [0.45, 0.46, 1.15, 1.05],  # non-enhancing core
    [0.72, 1.60, 1.10, 1.15],  # enhancing rim: iso T1, bright T1ce
])
P_NO_ENHANCEMENT = 0.2  # fraction of cases with a non-enhancing (lower-grade-like) core


def _template_folder() -> str:
    import nilearn.datasets

    return os.path.join(os.path.dirname(nilearn.datasets.__file__), "data")


@lru_cache(maxsize=4)
def load_anatomy(spacing: float) -> dict:
    """MNI152 GM/WM/CSF probability maps at 1 mm, smoothed for the target spacing (anti-aliasing).

    CSF is the brain mask (filled, closed GM+WM) minus GM and WM, as the issue asks.
    """
    import nibabel as nib

    folder = _template_folder()
    gm = np.asarray(nib.load(os.path.join(folder, "mni_icbm152_gm_tal_nlin_sym_09a_converted.nii.gz")).dataobj,
                    dtype=np.float32) / 255
    wm = np.asarray(nib.load(os.path.join(folder, "mni_icbm152_wm_tal_nlin_sym_09a_converted.nii.gz")).dataobj,
                    dtype=np.float32) / 255
    tissue = gm + wm
    brain = ndimage.binary_closing(tissue > 0.2, structure=np.ones((3, 3, 3)), iterations=3)
    brain = ndimage.binary_fill_holes(brain)
    # keep the largest component only
    lab, n = ndimage.label(brain)
    if n > 1:
        brain = lab == (np.argmax(np.bincount(lab.ravel())[1:]) + 1)
    brain = brain.astype(np.float32)
    csf = np.clip(brain - gm - wm, 0, 1)
    sigma = max(0.0, 0.42 * spacing - 0.4)
    maps = np.stack([csf, gm, wm, brain])
    if sigma > 0:
        maps = np.stack([ndimage.gaussian_filter(m, sigma) for m in maps])
    nz = np.argwhere(brain > 0)
    lo, hi = nz.min(0) - 6, nz.max(0) + 6
    # candidate tumour centres: white matter at least 25 mm inside the brain
    centres = np.argwhere((wm > 0.6) & (ndimage.distance_transform_edt(brain > 0) > 25))
    return {"maps": maps, "bbox_lo": lo.astype(np.float64), "bbox_hi": hi.astype(np.float64),
            "tumour_centres": centres.astype(np.float64)}


def _smooth_field(rng: np.random.Generator, shape: tuple, coarse: int) -> np.ndarray:
    """Smooth random field in about [-1, 1]: a coarse Gaussian grid upsampled with cubic splines."""
    grid = rng.standard_normal((coarse,) * 3)
    field = ndimage.zoom(grid, [s / coarse for s in shape], order=3, mode="nearest", grid_mode=True)
    field = field[: shape[0], : shape[1], : shape[2]]
    return field / (np.abs(field).max() + 1e-8)


def _rotation(rng: np.random.Generator, max_deg: float) -> np.ndarray:
    r = np.eye(3)
    for axis in range(3):
        a = np.deg2rad(rng.uniform(-max_deg, max_deg))
        c, s = np.cos(a), np.sin(a)
        i, j = [k for k in range(3) if k != axis]
        m = np.eye(3)
        m[i, i], m[i, j], m[j, i], m[j, j] = c, -s, s, c
        r = r @ m
    return r


@dataclass
class PhantomCase:
    images: np.ndarray  # (4, X, Y, Z) float32, channel order of CHANNEL_NAMES, 0 outside the brain
    labels: np.ndarray  # (X, Y, Z) uint8: 0, EDEMA, NECROSIS, ENHANCING
    tissue: np.ndarray  # (3, X, Y, Z) CSF, GM, WM probabilities, kept so contrast rules can be checked


def make_case(seed: int, index: int, spacing: float = DEFAULT_SPACING) -> PhantomCase:
    """One phantom case on an isotropic `spacing` grid.

    Deterministic in (seed, index), independent of how many cases are generated or in what order.
    """
    rng = np.random.default_rng([seed, index])
    anat = load_anatomy(spacing)
    lo, hi = anat["bbox_lo"], anat["bbox_hi"]
    shape = tuple(int(np.ceil((h - l) / spacing)) for l, h in zip(lo, hi))
    # output voxel centres in template-voxel (=mm) coordinates, relative to the brain centre
    centre = (lo + hi) / 2
    axes = [lo[d] + spacing * (np.arange(shape[d]) + 0.5) - centre[d] for d in range(3)]
    y = np.stack(np.meshgrid(*axes, indexing="ij"))  # (3, X, Y, Z), mm around the centre

    # tumour placement, before any deformation: a white-matter point away from the brain border
    maps = anat["maps"]
    t_centre = anat["tumour_centres"][rng.integers(len(anat["tumour_centres"]))] - centre  # mm around the centre
    core_radius = rng.uniform(10, 18)
    edema_radius = core_radius * rng.uniform(1.4, 2.0)

    # subject -> template mapping: mass effect around the tumour, elastic field, random affine
    d = y - t_centre[:, None, None, None]
    r = np.sqrt((d ** 2).sum(0)) + 1e-6
    push = rng.uniform(0.3, 0.55) * np.exp(-(r / (1.3 * edema_radius)) ** 2)
    x = t_centre[:, None, None, None] + d * (1 - push)
    elastic = np.stack([_smooth_field(rng, shape, 5) for _ in range(3)]) * rng.uniform(2, 4)
    x = x + elastic
    rot = _rotation(rng, 10) * rng.uniform(0.92, 1.08)
    shift = rng.uniform(-5, 5, 3)
    x = np.einsum("ij,j...->i...", rot, x) + (centre + shift)[:, None, None, None]
    tissue = np.stack([ndimage.map_coordinates(m, x, order=1, mode="constant", cval=0) for m in maps])
    csf, gm, wm, brain_p = tissue
    brain = brain_p > 0.5

    # irregular tumour: radial distance modulated by smooth noise, anisotropic and rotated
    tr = _rotation(rng, 90)
    stretch = rng.uniform(0.8, 1.25, 3)
    dl = np.einsum("ij,j...->i...", tr.T, d) / stretch[:, None, None, None]
    rl = np.sqrt((dl ** 2).sum(0))
    core_d = rl / (core_radius * (1 + 0.3 * _smooth_field(rng, shape, 4) + 0.2 * _smooth_field(rng, shape, 7)))
    edema_d = rl / (edema_radius * (1 + 0.45 * _smooth_field(rng, shape, 4) + 0.3 * _smooth_field(rng, shape, 8)))
    labels = np.zeros(shape, np.uint8)
    labels[(edema_d < 1) & (csf < 0.5)] = EDEMA
    core = core_d < 1
    enhancing_case = rng.random() >= P_NO_ENHANCEMENT
    if enhancing_case:
        rim = rng.uniform(0.62, 0.8) * (1 + 0.12 * _smooth_field(rng, shape, 8))
        labels[core] = ENHANCING
        labels[core & (core_d < rim)] = NECROSIS
    else:
        labels[core] = NECROSIS
    labels[~brain] = 0

    # intensities: tissue mixture outside the tumour, tumour classes inside, soft edges
    means = TISSUE_MEANS * rng.uniform(0.93, 1.07, TISSUE_MEANS.shape)
    tumour_w = np.stack([ndimage.gaussian_filter((labels == v).astype(np.float32), 0.6)
                         for v in (EDEMA, NECROSIS, ENHANCING)])
    core_class = 4 if enhancing_case else 5  # necrosis vs non-enhancing core intensities for label 2
    tumour_means = means[[3, core_class, 6]]  # (3, 4)
    healthy = np.stack([csf, gm, wm]) / np.maximum(csf + gm + wm, 1e-3)
    w_healthy = np.clip(1 - tumour_w.sum(0), 0, 1)
    images = (np.einsum("tm,t...->m...", means[:3], healthy) * w_healthy
              + np.einsum("tm,t...->m...", tumour_means, tumour_w))
    texture = 1 + 0.04 * _smooth_field(rng, shape, 12)
    for m in range(4):
        bias = np.exp(0.2 * _smooth_field(rng, shape, 3))
        scale = rng.uniform(600, 1400)
        img = images[m] * texture * bias
        sigma = 0.03
        img = np.sqrt((img + sigma * rng.standard_normal(shape)) ** 2 + (sigma * rng.standard_normal(shape)) ** 2)
        images[m] = np.where(brain, img * scale, 0)  # skull-stripped, background exactly 0
    return PhantomCase(images.astype(np.float32), labels, np.stack([csf, gm, wm]))


def _write_nifti(arr: np.ndarray, path: str, spacing: float) -> None:
    img = sitk.GetImageFromArray(np.ascontiguousarray(arr.transpose(2, 1, 0)))
    img.SetSpacing((spacing,) * 3)
    sitk.WriteImage(img, path, useCompression=True)


def _write_case(args: tuple) -> None:
    seed, index, spacing, img_dir, lbl_dir = args
    case = make_case(seed, index, spacing)
    name = case_name(index)
    for c in range(case.images.shape[0]):
        _write_nifti(case.images[c], os.path.join(img_dir, f"{name}_{c:04d}.nii.gz"), spacing)
    _write_nifti(case.labels, os.path.join(lbl_dir, f"{name}.nii.gz"), spacing)


def case_name(index: int) -> str:
    return f"Phantom_{index:05d}"


def dataset_folder_name(dataset_id: int) -> str:
    return f"Dataset{dataset_id:03d}_{DATASET_NAME}"


def dataset_json(num_training: int) -> dict:
    return {
        "channel_names": CHANNEL_NAMES,
        "labels": LABELS,
        "numTraining": num_training,
        "file_ending": ".nii.gz",
        "regions_class_order": [EDEMA, NECROSIS, ENHANCING],
        "description": "nnunetv2-mtg BraTS-like phantom (MNI152 anatomy, synthetic gliomas). "
                       "Labels: 1 edema, 2 necrosis/non-enhancing core, 3 enhancing tumour.",
    }


def generate(dataset_id: int, num_train: int, num_test: int = 0, spacing: float = DEFAULT_SPACING,
             seed: int = 0, overwrite: bool = False, num_processes: int | None = None) -> str:
    """Write Dataset<ID>_BraTSPhantom into $nnUNet_raw; returns its folder.

    The dataset is built in a hidden temporary folder and moved into place at the end, so a crash
    never leaves a half-written dataset; only a previous phantom with the same ID is replaced.
    """
    if not 1 <= dataset_id <= 999:
        raise UserInputError(f"dataset ID must be in 1..999, got {dataset_id}")
    if num_train < 1 or num_test < 0:
        raise UserInputError("need -n >= 1 training cases and --test >= 0")
    raw = require_env_folder("nnUNet_raw", create=True)
    target = os.path.join(raw, dataset_folder_name(dataset_id))
    prefix = f"Dataset{dataset_id:03d}_"
    clashes = sorted(f for f in os.listdir(raw) if f.startswith(prefix) and os.path.join(raw, f) != target)
    if clashes:
        raise UserInputError(f"dataset ID {dataset_id} is already used by {clashes} in {raw}. "
                             f"Pick another ID (-d); this tool never replaces a dataset it did not make.")
    if os.path.exists(target) and not overwrite:
        raise UserInputError(f"{target} already exists. Pass --overwrite to replace this phantom, "
                             f"or choose another dataset ID with -d.")

    tmp = tempfile.mkdtemp(prefix=f".{dataset_folder_name(dataset_id)}.tmp-", dir=raw)
    try:
        jobs = []
        for sub_img, sub_lbl, indices in (("imagesTr", "labelsTr", range(num_train)),
                                          ("imagesTs", "labelsTs", range(num_train, num_train + num_test))):
            if len(indices) == 0:
                continue
            img_dir, lbl_dir = os.path.join(tmp, sub_img), os.path.join(tmp, sub_lbl)
            os.makedirs(img_dir)
            os.makedirs(lbl_dir)
            jobs += [(seed, i, spacing, img_dir, lbl_dir) for i in indices]
        with open(os.path.join(tmp, "dataset.json"), "w") as f:
            json.dump(dataset_json(num_train), f, indent=2)
        load_anatomy(spacing)  # once in the parent; forked workers inherit it
        n_proc = num_processes or min(len(jobs), os.cpu_count() or 1)
        desc = f"phantom {dataset_folder_name(dataset_id)}"
        if n_proc > 1:
            with multiprocessing.get_context("fork").Pool(n_proc) as pool:
                for _ in tqdm(pool.imap_unordered(_write_case, jobs), total=len(jobs), desc=desc):
                    pass
        else:
            for job in tqdm(jobs, desc=desc):
                _write_case(job)
        old = None
        if os.path.exists(target):
            old = tmp + "-old"
            os.rename(target, old)
        os.rename(tmp, target)
        if old is not None:
            shutil.rmtree(old)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return target


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description="Write a BraTS-like phantom dataset (Dataset137 layout) into $nnUNet_raw.")
    p.add_argument("-d", type=int, required=True, help="dataset ID, e.g. 900 -> Dataset900_BraTSPhantom")
    p.add_argument("-n", type=int, default=40, help="number of training cases (imagesTr/labelsTr)")
    p.add_argument("--test", type=int, default=0, help="number of test cases (imagesTs/labelsTs)")
    p.add_argument("--spacing", type=float, default=DEFAULT_SPACING, help="isotropic voxel size in mm (default 3)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--overwrite", action="store_true", help="replace an existing phantom with this ID")
    p.add_argument("-np", type=int, default=None, help="worker processes (default: CPU count)")
    a = p.parse_args(argv)
    try:
        out = generate(a.d, a.n, a.test, a.spacing, a.seed, a.overwrite, a.np)
    except UserInputError as e:
        sys.exit(f"nnUNetv2_mtg_phantom: error: {e}")
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
