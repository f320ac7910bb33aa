"""The picture of a predicted case: the slice it shows, the missing channel named, the BraTS colours."""
import numpy as np
from PIL import Image

from nnunetv2_mtg.figures import draw_case, label_colours, tumour_slice

REGIONS = {"labels": {"background": 0, "whole tumor": [1, 2, 3], "tumor core": [2, 3], "enhancing tumor": [3]},
           "regions_class_order": [1, 2, 3]}


def test_colours_follow_the_subregions():
    regions = label_colours(REGIONS)
    labels = label_colours({"labels": {"background": 0, "necrosis": 1, "edema": 2, "enhancing": 4}})
    assert regions[1] == labels[2] == ("edema", "#2ca02c")
    assert regions[2][1] == labels[1][1] == "#d62728" and regions[3][1] == labels[4][1] == "#ffd700"
    other = label_colours({"labels": {"background": 0, "liver": 1, "tumour": 2}})
    assert [n for n, _ in other.values()] == ["liver", "tumour"] and len({c for _, c in other.values()}) == 2


def test_the_slice_with_most_tumour_and_the_missing_channel(tmp_path):
    seg = np.zeros((6, 20, 20), dtype=np.uint8)
    seg[1, 5:8, 5:8] = 1
    seg[4, 2:12, 2:12] = 3
    assert tumour_slice(seg) == 4
    assert tumour_slice(np.zeros_like(seg), seg) == 4 and tumour_slice(np.zeros_like(seg)) == 3
    rng = np.random.default_rng(0)
    channels = [rng.random(seg.shape), rng.random(seg.shape), rng.random(seg.shape), None]
    path = tmp_path / "case.png"
    z, titles = draw_case(str(path), channels, ["T1", "T1ce", "T2", "FLAIR"], seg, label_colours(REGIONS),
                          reference=seg, title="case")
    assert z == 4 and titles == ["T1", "T1ce", "T2", "FLAIR (missing)", "prediction", "reference"]
    empty = tmp_path / "empty.png"
    draw_case(str(empty), channels, ["T1", "T1ce", "T2", "FLAIR"], np.zeros_like(seg), label_colours(REGIONS))

    def yellow(png):
        image = np.asarray(Image.open(png).convert("RGB")).astype(int)
        return int(((image[..., 0] > 200) & (image[..., 1] > 150) & (image[..., 2] < 100)).sum())

    assert yellow(path) > yellow(empty) + 500  # the enhancing tumour of slice 4 (the legend has a yellow patch too)


def test_comparison_heatmap_puts_differences_under_the_dice(tmp_path):
    """Several trainers side by side: Dice in one row and each difference to the first below it, so the picture
    grows by one panel per trainer, not two."""
    from nnunetv2_mtg.report import comparison_heatmap

    regions = ["WT", "TC", "ET"]
    summary = {s: {r: (0.5 + 0.1 * k, 0.0) for k, r in enumerate(regions)} for s in ("T1", "T2", "mean")}
    sizes = {}
    for n in (1, 3, 5):
        path = tmp_path / f"{n}.png"
        comparison_heatmap(str(path), {f"trainer{i}": summary for i in range(n)}, regions)
        sizes[n] = Image.open(path).size
    assert sizes[3][1] == sizes[5][1] > 1.8 * sizes[1][1]  # two rows as soon as there is a difference to show
    assert sizes[5][0] / sizes[3][0] == 5 / 3 and sizes[3][0] == 3 * sizes[1][0]
