"""Channel names -> BraTS modalities for every naming convention, and the 15 subsets in papers' order."""
import pytest

from nnunetv2_mtg.env import UserInputError
from nnunetv2_mtg.modalities import enumerate_subsets, find_subsets, modality_names

from helpers import PAPER_ROWS


def _dj(*names):
    return {"channel_names": {str(i): n for i, n in enumerate(names)}}


@pytest.mark.parametrize("names", [
    ("T1", "T1ce", "T2", "Flair"),  # Dataset042/043/137
    ("T1", "T1C", "T2W", "T2F"),  # Dataset226 (BraTS 2024)
    ("t1n", "t1c", "t2w", "t2f"),  # BraTS 2023+ files
    ("T1", "T1-Gd", "t2", "FLAIR"),
    ("t1", "t1Gd", "T2", "flair"),
    ("T1w", "T1post", "T2w", "T2-FLAIR"),
])
def test_conventions_map_to_brats(names):
    assert modality_names(_dj(*names)) == ["T1", "T1ce", "T2", "FLAIR"]


def test_fifteen_subsets_in_paper_order_with_masks_in_channel_order():
    subsets = enumerate_subsets(modality_names(_dj("T1", "T1ce", "T2", "Flair")))
    assert [s.name for s in subsets] == PAPER_ROWS
    assert subsets[3].mask == (False, False, False, True) and subsets[-1].is_full
    # another channel order: same rows, masks follow the channels
    permuted = enumerate_subsets(modality_names(_dj("t2f", "t1c", "t1n", "t2w")))
    assert [s.name for s in permuted] == PAPER_ROWS
    assert permuted[0].mask == (False, False, False, True)  # T2 is channel 3 there
    assert permuted[9].mask == (True, True, False, False)  # T1ce+FLAIR
    assert len({s.mask for s in permuted}) == 15 and not any(not any(s.mask) for s in permuted)


def test_explicit_mapping_for_other_datasets():
    dj = _dj("ct", "pet", "mr")
    dj["mtg_modalities"] = {"0": "CT", "1": "PET", "2": "MR"}
    names = modality_names(dj)
    subsets = enumerate_subsets(names)
    assert names == ["CT", "PET", "MR"] and len(subsets) == 7
    assert [s.name for s in subsets[:4]] == ["CT", "PET", "MR", "CT+PET"] and subsets[-1].name == "CT+PET+MR"
    assert find_subsets(subsets, ["mr+ct"])[0].mask == (True, False, True)


def test_subset_lookup_by_name():
    subsets = enumerate_subsets(["T1", "T1ce", "T2", "FLAIR"])
    got = find_subsets(subsets, ["flair+t1gd", "full", "T2", "t2f+t1n"])
    assert [s.name for s in got] == ["T1ce+FLAIR", "T1+T1ce+T2+FLAIR", "T2", "T1+FLAIR"]


def test_bad_input():
    with pytest.raises(UserInputError) as e:
        modality_names(_dj("T1", "ADC", "T2"))
    msg = str(e.value)
    assert '"1": "ADC"' in msg and "mtg_modalities" in msg and '"0": "T1"' in msg
    with pytest.raises(UserInputError, match="at least two channels"):
        modality_names(_dj("T1"))
    with pytest.raises(UserInputError, match="one distinct"):
        modality_names(dict(_dj("a", "b"), mtg_modalities={"0": "A"}))
    with pytest.raises(UserInputError) as e:
        find_subsets(enumerate_subsets(["T1", "T1ce", "T2", "FLAIR"]), ["T1+PD"])
    assert "T1ce+FLAIR" in str(e.value) and "T1+PD" in str(e.value)
