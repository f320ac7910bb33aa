"""`nnUNetv2_mtg_gap`: how far each modality subset's bottleneck latent is from the full input's.

The paper's claim is that aligning every subset to one anchor narrows this "modality gap". For each case,
one patch (the network's patch size, centred on the case) is fed with all modalities and with each
subset; the bottleneck representation is compared by
- nmse: ||f_subset - f_full||^2 / ||f_full||^2 (0 = identical), and
- linear CKA (Kornblith et al. 2019) between the two (voxels x channels) feature matrices (1 = the same
  representation up to rotation and scale).
The representation is mu of the alignment head for our aligned networks, the encoder's bottleneck
output for any other nnU-Net network, so any two models can be compared.
"""
from __future__ import annotations

import argparse
import os
import sys

import numpy as np
import torch
from torch import nn
from tqdm import tqdm

from nnunetv2_mtg import report
from nnunetv2_mtg.alignment import AlignedUNet
from nnunetv2_mtg.env import UserInputError
from nnunetv2_mtg.modalities import Subset

GAP_FIELDS = ("subset", "nmse", "cka", "cases")


def bottleneck(network: nn.Module, x: torch.Tensor) -> torch.Tensor:
    """The representation compared by the gap report (see module docstring)."""
    bottleneck_stage = len(network.encoder.output_channels) - 1
    if isinstance(network, AlignedUNet) and bottleneck_stage in network.stages:
        network(x)
        return network.latents[bottleneck_stage][0]
    captured = {}
    handle = network.encoder.register_forward_hook(lambda m, i, o: captured.setdefault("z", o[-1]))
    try:
        network(x)
    finally:
        handle.remove()
    return captured["z"]


def linear_cka(a: torch.Tensor, b: torch.Tensor) -> float:
    """Linear CKA between feature maps (1, C, ...) with voxels as samples and channels as features."""
    x = a.flatten(2)[0].T.double()
    y = b.flatten(2)[0].T.double()
    x, y = x - x.mean(0), y - y.mean(0)
    cross = (y.T @ x).norm() ** 2
    denom = (x.T @ x).norm() * (y.T @ y).norm()
    return float(cross / denom) if denom > 0 else float("nan")


def centre_patch(data: torch.Tensor, patch_size: tuple[int, ...]) -> torch.Tensor:
    """(C, ...) -> (1, C, *patch_size): the patch centred on the case's non-zero voxels, zero-padded."""
    nonzero = (data != 0).any(0).nonzero()
    centre = ((nonzero.min(0).values + nonzero.max(0).values) // 2).tolist() if len(nonzero) else \
        [s // 2 for s in data.shape[1:]]
    out = torch.zeros((data.shape[0], *patch_size), dtype=data.dtype)
    src, dst = [], []
    for c, size, p in zip(centre, data.shape[1:], patch_size):
        lo = c - p // 2
        s0, s1 = max(lo, 0), min(lo + p, size)
        src.append(slice(s0, s1))
        dst.append(slice(s0 - lo, s1 - lo))
    out[(slice(None), *dst)] = data[(slice(None), *src)]
    return out[None]


@torch.no_grad()
def modality_gap(network: nn.Module, patches: list[torch.Tensor], subsets: list[Subset],
                 device: torch.device = torch.device("cpu")) -> dict[str, tuple[float, float]]:
    """{subset name: (mean nmse, mean CKA)} over the patches, for every subset but the full one."""
    network = network.to(device).eval()
    sums = {s.name: [] for s in subsets if not s.is_full}
    for patch in tqdm(patches, desc="modality gap", leave=False):
        x = patch.to(device)
        full = bottleneck(network, x).float()
        for s in subsets:
            if s.is_full:
                continue
            mask = torch.tensor(s.mask, dtype=x.dtype, device=device).view(1, -1, *([1] * (x.ndim - 2)))
            z = bottleneck(network, x * mask).float()
            nmse = float(((z - full) ** 2).sum() / (full ** 2).sum().clamp_min(1e-12))
            sums[s.name].append((nmse, linear_cka(z, full)))
    return {k: (float(np.mean([v[0] for v in vals])), float(np.mean([v[1] for v in vals]))) for k, vals in sums.items()}


def gap_table(results: dict[str, dict[str, tuple[float, float]]]) -> str:
    names = list(results)
    subsets = list(results[names[0]])
    header = ["subset"] + [f"nmse {t}" for t in names] + [f"CKA {t}" for t in names]
    lines = ["## Modality gap to the full input (nmse: lower is closer; CKA: higher is closer)", "",
             "| " + " | ".join(header) + " |", "| --- |" + " ---: |" * (len(header) - 1)]
    for s in subsets + ["mean"]:
        vals = results if s != "mean" else {t: {"mean": tuple(np.mean([results[t][x][k] for x in subsets])
                                                               for k in (0, 1))} for t in names}
        cells = [f"**{s}**" if s == "mean" else s] + [f"{vals[t][s][0]:.4f}" for t in names] + \
                [f"{vals[t][s][1]:.4f}" for t in names]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def gap_barplot(path: str, results: dict[str, dict[str, tuple[float, float]]]) -> None:
    import matplotlib

    matplotlib.use("agg")
    import matplotlib.pyplot as plt

    names = list(results)
    subsets = list(results[names[0]])
    width = 0.8 / len(names)
    fig, ax = plt.subplots(figsize=(2 + 0.7 * len(subsets), 4.5))
    for k, t in enumerate(names):
        ax.bar(np.arange(len(subsets)) + k * width, [results[t][s][0] for s in subsets], width, label=t)
    ax.set_xticks(np.arange(len(subsets)) + 0.4 - width / 2, subsets, rotation=60, ha="right")
    ax.set_ylabel("nmse of bottleneck latent to full input")
    ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def run(dataset: str, trainers: list[str], fold, configuration: str = "3d_fullres", plans: str = "nnUNetPlans",
        out: str | None = None, device: torch.device | None = None, images: str | None = None,
        checkpoint: str = "checkpoint_final.pth") -> dict:
    from nnunetv2_mtg.cases import (PreprocessedCases, default_device, folder_cases, load_predictor, open_models,
                                    validation_cases)
    from nnunetv2_mtg.modalities import enumerate_subsets, modality_names

    m = open_models(dataset, trainers, plans, configuration, fold, checkpoint, out, "mtg_gap")
    dataset_name, folders, dataset_json, out = m.dataset_name, m.folders, m.dataset_json, m.out
    pm, cm = m.plans_manager, m.configuration_manager
    device = device or default_device()
    subsets = enumerate_subsets(modality_names(dataset_json))
    cases = folder_cases(images, None, dataset_json) if images else validation_cases(dataset_name, int(fold),
                                                                                         dataset_json)
    store = PreprocessedCases(os.path.join(out, "preprocessed"), pm, cm, dataset_json)
    store.prepare(cases)
    patches = [centre_patch(store.load(c)[0], tuple(cm.patch_size)) for c in cases]
    results = {}
    for t in trainers:
        network = load_predictor(folders[t], fold, checkpoint, device, mirror=False).network
        results[t] = modality_gap(network, patches, subsets, device)
        rows = [{"subset": s, "nmse": round(v[0], 6), "cka": round(v[1], 6), "cases": len(cases)}
                for s, v in results[t].items()]
        os.makedirs(os.path.join(out, t), exist_ok=True)
        report.write_csv_atomic(os.path.join(out, t, "gap.csv"), GAP_FIELDS, rows)
    with open(os.path.join(out, "gap.md"), "w") as f:
        f.write(gap_table(results))
    gap_barplot(os.path.join(out, "gap.png"), results)
    print(f"results in {out}")
    return results


def main(argv: list[str] | None = None) -> None:
    from nnunetv2_mtg.evaluate import add_model_arguments

    p = argparse.ArgumentParser(description="Distance of each modality subset's bottleneck latent to the full "
                                            "input's (table + bar plot in -o).")
    add_model_arguments(p)
    p.add_argument("-o", default=None, help="output folder (default $nnUNet_results/DATASET/mtg_gap/...)")
    p.add_argument("-i", default=None, help="images folder instead of the fold's validation cases")
    a = p.parse_args(argv)
    try:
        run(a.d, a.tr, int(a.f) if a.f != "all" else a.f, a.c, a.p, a.o,
            torch.device(a.device) if a.device else None, a.i, a.chk)
    except UserInputError as e:
        sys.exit(f"nnUNetv2_mtg_gap: error: {e}")


if __name__ == "__main__":
    main()
