"""`nnUNetv2_mtg_gap`: the modality gap and the bypass check, per representation the decoder reads.

Representations of any nnU-Net U-Net (PlainConvUNet, ResidualEncoderUNet, with or without our alignment):
- `stage k`: what the decoder receives from encoder stage k: mu of the alignment head at an aligned stage
  (marked aligned), the encoder's output otherwise, so aligned and unaligned models compare stage by stage;
- `stem`: the modality stem's output (missing modalities already replaced by the anchor), for stem models.

Per representation, on one patch per case (the network's patch size, centred on the case):
- the modality gap of every subset to the full input: nmse = ||f_subset - f_full||^2 / ||f_full||^2 (0 = the
  same) and linear CKA (Kornblith et al. 2019) of the (voxels x channels) matrices (1 = the same up to
  rotation and scale). The paper's claim is that alignment narrows it;
- the bypass check: the fraction of the reference's foreground voxels whose predicted label (full input)
  changes when the representation is replaced by the anchor's mean: zeros for a stage (the mean of N(0, I);
  for an unaligned stage, "nothing"), the anchor itself for the stem. Near 0 means the decoder does not use
  the representation: an alignment there is satisfied by giving it up (the collapse of docs/measurements.md).
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
from nnunetv2_mtg.alignment import unwrap
from nnunetv2_mtg.env import UserInputError
from nnunetv2_mtg.modalities import Subset

GAP_FIELDS = ("representation", "aligned", "subset", "nmse", "cka", "cases")
BYPASS_FIELDS = ("representation", "aligned", "changed_fraction", "foreground_voxels", "cases")


class Probe:
    """Reads, or replaces by the anchor's mean, what the decoder (and a modality stem) pass on, through
    forward hooks that leave the network unchanged."""

    def __init__(self, network: nn.Module):
        self.network = unwrap(network)
        encoder = getattr(self.network, "encoder", None)
        if encoder is None or not hasattr(self.network, "decoder") or not hasattr(encoder, "output_channels"):
            raise UserInputError(f"the gap report reads the skips of nnU-Net's U-Nets (PlainConvUNet, "
                                 f"ResidualEncoderUNet); {type(self.network).__name__} has no encoder/decoder pair.")
        self.stem = getattr(self.network, "stem", None)
        self.aligned = {f"stage {s}" for s in getattr(self.network, "stages", ())}
        if self.stem is not None:
            self.aligned.add("stem")
        self.names = (["stem"] if self.stem is not None else []) + \
            [f"stage {k}" for k in range(len(encoder.output_channels))]

    @torch.no_grad()
    def run(self, x: torch.Tensor, replace: str | None = None) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        """The network's output for x and every representation of that pass; `replace` names one
        representation to replace by the anchor's mean on its way to the decoder."""
        captured: dict[str, torch.Tensor] = {}

        def decoder_input(module, args):
            skips = list(args[0])
            captured.update({f"stage {k}": t for k, t in enumerate(skips)})
            if replace is None or not replace.startswith("stage "):
                return None
            k = int(replace.split()[1])
            skips[k] = torch.zeros_like(skips[k])
            return (skips,)

        def stem_output(module, args, output):
            captured["stem"] = output
            return module.anchor_everywhere(args[0]) if replace == "stem" else None

        handles = [self.network.decoder.register_forward_pre_hook(decoder_input)]
        if self.stem is not None:
            handles.append(self.stem.register_forward_hook(stem_output))
        try:
            out = self.network(x)
        finally:
            for h in handles:
                h.remove()
        return (out[0] if isinstance(out, (list, tuple)) else out), captured


def linear_cka(a: torch.Tensor, b: torch.Tensor) -> float:
    """Linear CKA between feature maps (1, C, ...) with voxels as samples and channels as features."""
    x = a.flatten(2)[0].T.double()
    y = b.flatten(2)[0].T.double()
    x, y = x - x.mean(0), y - y.mean(0)
    cross = (y.T @ x).norm() ** 2
    denom = (x.T @ x).norm() * (y.T @ y).norm()
    return float(cross / denom) if denom > 0 else float("nan")


def centre_patch(data: torch.Tensor, patch_size: tuple[int, ...], centre_of: torch.Tensor | None = None) -> torch.Tensor:
    """(C, ...) -> (1, C, *patch_size): the patch centred on the non-zero voxels of `centre_of` (default: of
    data), zero-padded. Pass the same `centre_of` to cut the matching patch of another array. A 2d patch of a
    volume is cut from its slice through that centre along the first axis (the axis nnU-Net's 2d slices along)."""
    ref = data if centre_of is None else centre_of
    nonzero = (ref != 0).any(0).nonzero()
    centre = ((nonzero.min(0).values + nonzero.max(0).values) // 2).tolist() if len(nonzero) else \
        [s // 2 for s in ref.shape[1:]]
    sliced = data.ndim - 1 - len(patch_size)  # leading axes a 2d network does not see
    data, centre = data[(slice(None), *centre[:sliced])], centre[sliced:]
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
                 device: torch.device = torch.device("cpu")) -> dict[str, dict[str, tuple[float, float]]]:
    """{representation: {subset: (mean nmse, mean CKA)}} over the patches, for every subset but the full one."""
    probe = Probe(network.to(device).eval())
    values = {n: {s.name: [] for s in subsets if not s.is_full} for n in probe.names}
    for patch in tqdm(patches, desc="modality gap", leave=False):
        x = patch.to(device)
        _, full = probe.run(x)
        for s in subsets:
            if s.is_full:
                continue
            mask = torch.tensor(s.mask, dtype=x.dtype, device=device).view(1, -1, *([1] * (x.ndim - 2)))
            _, reps = probe.run(x * mask)
            for n in probe.names:
                f, z = full[n].float(), reps[n].float()
                nmse = float(((z - f) ** 2).sum() / (f ** 2).sum().clamp_min(1e-12))
                values[n][s.name].append((nmse, linear_cka(z, f)))
    return {n: {s: (float(np.mean([v[0] for v in vals])), float(np.mean([v[1] for v in vals])))
                for s, vals in per.items()} for n, per in values.items()}


@torch.no_grad()
def bypass(network: nn.Module, patches: list[torch.Tensor], foregrounds: list[torch.Tensor | None], label_manager,
           device: torch.device = torch.device("cpu")) -> dict[str, tuple[float, int]]:
    """{representation: (fraction of foreground voxels whose predicted label changes when it is replaced by the
    anchor's mean, number of foreground voxels)}, pooled over the patches (full input). A foreground of None (a
    case without a label) is the foreground of the network's own full-input prediction."""
    probe = Probe(network.to(device).eval())
    changed = {n: 0 for n in probe.names}
    total = 0
    for patch, fg in zip(patches, foregrounds):
        x = patch.to(device)
        seg = label_manager.convert_logits_to_segmentation(probe.run(x)[0][0])
        fg = seg != 0 if fg is None else fg.to(device)
        total += int(fg.sum())
        for n in probe.names:
            replaced = label_manager.convert_logits_to_segmentation(probe.run(x, replace=n)[0][0])
            changed[n] += int(((replaced != seg) & fg).sum())
    return {n: (changed[n] / total if total else float("nan"), total) for n in probe.names}


def gap_markdown(gaps: dict, bypasses: dict, aligned: dict, predicted_foreground: bool = False) -> str:
    where = ("voxels the full-input prediction calls foreground (no case had a label file, so the reference "
             "foreground is each model's own prediction)") if predicted_foreground else "reference-foreground voxels"
    lines = ["## Bypass check and modality gap, per representation the decoder reads", "",
             f"changed = fraction of {where} whose predicted label (full input) changes when the "
             "representation is replaced by the anchor's mean (near 0: the decoder ignores it). nmse (lower is "
             "closer) and CKA (higher is closer) of the subsets to the full input, mean over the 14 subsets.", "",
             "| trainer | representation | aligned | changed | nmse | CKA |", "| --- | --- | --- | ---: | ---: | ---: |"]
    for t in gaps:
        for n in gaps[t]:
            per = gaps[t][n].values()
            lines.append(f"| {t} | {n} | {'yes' if n in aligned[t] else 'no'} | {bypasses[t][n][0]:.4f} | "
                         f"{np.mean([v[0] for v in per]):.4f} | {np.mean([v[1] for v in per]):.4f} |")
    for t in gaps:
        names = list(gaps[t])
        subsets = list(gaps[t][names[0]])
        lines += ["", f"### {t}: nmse of each subset to the full input", "",
                  "| subset | " + " | ".join(names) + " |", "| --- |" + " ---: |" * len(names)]
        for s in subsets:
            lines.append(f"| {s} | " + " | ".join(f"{gaps[t][n][s][0]:.4f}" for n in names) + " |")
    return "\n".join(lines) + "\n"


def gap_plot(path: str, gaps: dict, bypasses: dict) -> None:
    import matplotlib

    matplotlib.use("agg")
    import matplotlib.pyplot as plt

    names = list(gaps)
    reps = list(dict.fromkeys(n for t in names for n in gaps[t]))
    width = 0.8 / len(names)
    fig, axes = plt.subplots(1, 2, figsize=(4 + 1.6 * len(reps), 4.5))
    for k, t in enumerate(names):
        x = np.arange(len(reps)) + k * width
        nmse = [np.mean([v[0] for v in gaps[t][n].values()]) if n in gaps[t] else np.nan for n in reps]
        changed = [bypasses[t][n][0] if n in bypasses[t] else np.nan for n in reps]
        axes[0].bar(x, nmse, width, label=t)
        axes[1].bar(x, changed, width, label=t)
    for ax, title in zip(axes, ("modality gap: nmse to the full input (mean over subsets)",
                                "bypass check: foreground voxels changed\nwhen replaced by the anchor's mean")):
        ax.set_xticks(np.arange(len(reps)) + 0.4 - width / 2, reps, rotation=30, ha="right")
        ax.set_title(title, fontsize=10)
    axes[1].legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def run(dataset: str, trainers: list[str], fold, configuration: str = "3d_fullres", plans: str = "nnUNetPlans",
        out: str | None = None, device: torch.device | None = None, images: str | None = None,
        labels: str | None = None, checkpoint: str = "checkpoint_final.pth") -> dict:
    from nnunetv2_mtg.cases import (PreprocessedCases, default_device, drop_unlabelled, folder_cases, load_predictor,
                                    open_models, validation_cases)
    from nnunetv2_mtg.modalities import enumerate_subsets, modality_names

    if images is None and labels is not None:
        raise UserInputError("-l needs -i (the images of those labels)")
    m = open_models(dataset, trainers, plans, configuration, [fold], checkpoint, out, "mtg_gap")
    dataset_name, folders, dataset_json, out = m.dataset_name, m.folders, m.dataset_json, m.out
    pm, cm = m.plans_manager, m.configuration_manager
    device = device or default_device()
    subsets = enumerate_subsets(modality_names(dataset_json))
    cases = folder_cases(images, labels, dataset_json) if images else \
        validation_cases(dataset_name, int(fold), dataset_json)
    labelled, _ = drop_unlabelled(cases)
    predicted_foreground = not labelled
    if predicted_foreground:
        print("no case has a label file: the bypass check counts the foreground of each model's own full-input "
              "prediction (pass -l LABELS with -i for the reference foreground)")
    else:
        cases = labelled
    if not cases:
        raise UserInputError(f"no cases found in {images or f'the validation split of fold {fold}'}")
    store = PreprocessedCases(os.path.join(out, "preprocessed"), pm, cm, dataset_json)
    store.prepare(cases)
    patch_size = tuple(cm.patch_size)
    patches, foregrounds = [], []
    for c in cases:
        data = store.load(c)[0]
        patches.append(centre_patch(data, patch_size))
        foregrounds.append(None if predicted_foreground else
                           centre_patch(torch.from_numpy(store.segmentation(c)), patch_size, centre_of=data)[0, 0] > 0)
    label_manager = pm.get_label_manager(dataset_json)
    gaps, bypasses, aligned = {}, {}, {}
    for t in trainers:
        network = load_predictor(folders[t], fold, checkpoint, device, mirror=False).network
        aligned[t] = Probe(network).aligned
        gaps[t] = modality_gap(network, patches, subsets, device)
        bypasses[t] = bypass(network, patches, foregrounds, label_manager, device)
        os.makedirs(os.path.join(out, t), exist_ok=True)
        report.write_csv_atomic(os.path.join(out, t, "gap.csv"), GAP_FIELDS, [
            {"representation": n, "aligned": n in aligned[t], "subset": s, "nmse": round(v[0], 6),
             "cka": round(v[1], 6), "cases": len(cases)} for n, per in gaps[t].items() for s, v in per.items()])
        report.write_csv_atomic(os.path.join(out, t, "bypass.csv"), BYPASS_FIELDS, [
            {"representation": n, "aligned": n in aligned[t], "changed_fraction": round(v[0], 6),
             "foreground_voxels": v[1], "cases": len(cases)} for n, v in bypasses[t].items()])
    with open(os.path.join(out, "gap.md"), "w") as f:
        f.write(gap_markdown(gaps, bypasses, aligned, predicted_foreground))
    gap_plot(os.path.join(out, "gap.png"), gaps, bypasses)
    print(f"results in {out}")
    return {"gap": gaps, "bypass": bypasses}


def main(argv: list[str] | None = None) -> None:
    from nnunetv2_mtg.evaluate import add_model_arguments

    p = argparse.ArgumentParser(description="Modality gap of every representation the decoder reads, and the "
                                            "bypass check (table + CSV + plot in -o).")
    add_model_arguments(p)
    p.add_argument("-o", default=None, help="output folder (default $nnUNet_results/DATASET/mtg_gap/...)")
    p.add_argument("-i", default=None, help="images folder instead of the fold's validation cases")
    p.add_argument("-l", default=None, help="labels folder for -i (the bypass check's reference foreground; without "
                                            "labels, each model's own full-input prediction)")
    a = p.parse_args(argv)
    try:
        if len(a.f) != 1:
            raise UserInputError("the gap report takes one fold (-f 0)")
        run(a.d, a.tr, int(a.f[0]) if a.f[0] != "all" else "all", a.c, a.p, a.o,
            torch.device(a.device) if a.device else None, a.i, a.l, a.chk)
    except UserInputError as e:
        sys.exit(f"nnUNetv2_mtg_gap: error: {e}")


if __name__ == "__main__":
    main()
