"""A picture of one predicted case: the axial slice with the most predicted tumour, every input channel (a missing one
shown as a named blank panel), the prediction over an image in the colours BraTS viewers use, and the reference
beside it when one is given.

Colours follow the BraTS figures: edema (ED / SNFH) green, necrosis or non-enhancing core (NCR / NETC) red,
enhancing tumour yellow. A dataset whose labels do not name the tumour sub-regions gets one colour per label.
"""
from __future__ import annotations

import numpy as np

from nnunetv2_mtg.brats import subregion_labels
from nnunetv2_mtg.env import UserInputError

SUBREGION_COLOURS = {"edema": ("edema", "#2ca02c"), "necrosis": ("necrosis / non-enhancing", "#d62728"),
                     "enhancing": ("enhancing", "#ffd700")}


def label_colours(dataset_json: dict) -> dict[int, tuple[str, str]]:
    """{segmentation value: (name, colour)} for the values nnU-Net writes for this dataset."""
    try:
        return {value: SUBREGION_COLOURS[kind] for kind, value in subregion_labels(dataset_json).items()}
    except UserInputError:
        import matplotlib

        names = [k for k in dataset_json["labels"] if k != "background"]
        values = dataset_json.get("regions_class_order") or [dataset_json["labels"][k] for k in names]
        palette = matplotlib.colormaps["tab10"]
        return {int(v): (n, matplotlib.colors.to_hex(palette(i % 10))) for i, (n, v) in enumerate(zip(names, values))}


def tumour_slice(segmentation: np.ndarray, reference: np.ndarray | None = None) -> int:
    """Index along the first (axial, in nnU-Net's z, y, x arrays) axis with the most predicted tumour voxels; the
    reference's, then the middle slice, when nothing is predicted."""
    for seg in (segmentation, reference):
        if seg is not None and seg.any():
            return int(np.argmax((seg > 0).reshape(seg.shape[0], -1).sum(1)))
    return segmentation.shape[0] // 2


def _overlay(ax, image: np.ndarray, seg: np.ndarray, colours: dict[int, tuple[str, str]], title: str) -> None:
    import matplotlib

    ax.imshow(image, cmap="gray")
    rgba = np.zeros((*seg.shape, 4))
    for value, (_, colour) in colours.items():
        rgba[seg == value] = (*matplotlib.colors.to_rgb(colour), 0.55)
    ax.imshow(rgba)
    ax.set_title(title, fontsize=9)


def draw_case(path: str, channels: list[np.ndarray | None], channel_labels: list[str], segmentation: np.ndarray,
              colours: dict[int, tuple[str, str]], reference: np.ndarray | None = None,
              title: str = "") -> tuple[int, list[str]]:
    """Write the PNG of one case; returns the slice shown and the panels' titles. `channels` are (z, y, x) images
    in the segmentation's space, None for a missing one."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.patches import Patch

    if all(c is None for c in channels):
        raise ValueError("a case needs at least one present channel to be drawn")
    z = tumour_slice(segmentation, reference)
    panels = len(channels) + 1 + (reference is not None)
    fig, axes = plt.subplots(1, panels, figsize=(2.2 * panels, 2.8))
    for ax, image, label in zip(axes, channels, channel_labels):
        if image is None:
            ax.imshow(np.zeros(segmentation.shape[1:]), cmap="gray", vmin=0, vmax=1)
            ax.text(0.5, 0.5, f"{label}\nmissing", color="white", ha="center", va="center", fontsize=10,
                    transform=ax.transAxes)
            ax.set_title(f"{label} (missing)", fontsize=9)
        else:
            ax.imshow(image[z], cmap="gray")
            ax.set_title(label, fontsize=9)
    background = next(c for c in channels if c is not None)[z]
    _overlay(axes[len(channels)], background, segmentation[z], colours, "prediction")
    if reference is not None:
        _overlay(axes[-1], background, reference[z], colours, "reference")
    for ax in axes:
        ax.set_xticks([])
        ax.set_yticks([])
    fig.legend(handles=[Patch(color=c, label=n) for n, c in colours.values()], loc="lower center",
               ncol=len(colours), fontsize=8, frameon=False)
    fig.suptitle(f"{title}  (axial slice {z})", fontsize=10)
    fig.tight_layout(rect=(0, 0.08, 1, 0.95))
    titles = [ax.get_title() for ax in axes]
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return z, titles
