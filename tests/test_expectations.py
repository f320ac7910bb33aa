"""The expected Dice per subset that predict reads from an evaluation, on a hand-made summary."""
import pytest

from nnunetv2_mtg.expectations import channel_label, expectation


def _doc():
    def entry(mask, wt, tc, et):
        return {"mask": mask, "dice": {"WT": wt, "TC": tc, "ET": et}, "hd95": {"WT": 5, "TC": 6, "ET": 7}}

    return {"subsets": {"T1+T2+FLAIR": entry([True, False, True, True], 0.85, 0.62, 0.41),
                        "T1+T1ce+T2+FLAIR": entry([True, True, True, True], 0.88, 0.80, 0.78),
                        "T1ce": entry([False, True, False, False], 0.80, 0.75, 0.70)}}


def test_weak_regions_are_named_with_both_values():
    dice, warning = expectation(_doc(), (True, False, True, True), ["T1C (T1ce)"])
    assert dice == "WT 85 / TC 62 / ET 41"
    assert warning == ("T1C (T1ce) missing: expected TC Dice 62 vs 80 with all modalities; "
                       "expected ET Dice 41 vs 78 with all modalities")
    assert expectation(_doc(), (False, True, False, False), ["T1", "T2", "FLAIR"]) == ("WT 80 / TC 75 / ET 70", "")
    assert expectation(_doc(), (True, True, True, True), []) == ("WT 88 / TC 80 / ET 78", "")
    dice, warning = expectation(_doc(), (True, False, False, False), ["T1ce", "T2", "FLAIR"])
    assert dice == "" and "not in the model's evaluation" in warning


@pytest.mark.parametrize("name, canonical, label", [("T1C", "T1ce", "T1C (T1ce)"), ("Flair", "FLAIR", "Flair"),
                                                    ("t2f", "FLAIR", "t2f (FLAIR)"), ("T2", "T2", "T2")])
def test_channels_named_as_the_dataset_does(name, canonical, label):
    assert channel_label(name, canonical) == label
