"""BraTS naming and label conventions, on hand-made folders and label maps."""
import numpy as np
import pytest

from nnunetv2_mtg.brats import challenge_lookup, parse_name, scan_folder, subregion_labels
from nnunetv2_mtg.env import UserInputError
from nnunetv2_mtg.metrics import region_names
from nnunetv2_mtg.predict import brats_input_cases, resolve_modalities

REGION_BASED = {"labels": {"background": 0, "whole tumor": [1, 2, 3], "tumor core": [2, 3], "enhancing tumor": 3},
                "regions_class_order": [1, 2, 3]}  # Dataset137: 1 edema, 2 necrosis, 3 enhancing
LABEL_BASED_2023 = {"labels": {"background": 0, "NETC": 1, "SNFH": 2, "ET": 3}}
LABEL_BASED_NAMES = {"labels": {"background": 0, "edema": 1, "necrosis": 2, "enhancing": 3}}
MAP = np.array([[0, 1, 2, 3]])  # one voxel of every dataset label


def _touch(path):
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(b"")


def test_names_of_both_generations():
    assert parse_name("BraTS-GLI-00001-000-t1c.nii.gz", ".nii.gz") == ("BraTS-GLI-00001-000", "T1ce")
    assert parse_name("BraTS-GLI-00001-000-t2f.nii.gz", ".nii.gz") == ("BraTS-GLI-00001-000", "FLAIR")
    assert parse_name("BraTS2021_00001_t1ce.nii.gz", ".nii.gz") == ("BraTS2021_00001", "T1ce")
    assert parse_name("BraTS2021_00001_t1.nii.gz", ".nii.gz") == ("BraTS2021_00001", "T1")
    assert parse_name("BraTS2021_00001_seg.nii.gz", ".nii.gz") == ("BraTS2021_00001", "seg")
    assert parse_name("BraTS2021_00001_t1.nii", ".nii.gz") is None
    assert parse_name("notes.txt", ".nii.gz") is None


def test_scan_per_case_folders_and_flat(tmp_path):
    per_case = tmp_path / "per_case"
    for m in ("t1n", "t1c", "t2w", "t2f", "seg"):
        _touch(per_case / "BraTS-GLI-00001-000" / f"BraTS-GLI-00001-000-{m}.nii.gz")
    for m in ("t1n", "t2w"):  # a case without T1ce and FLAIR
        _touch(per_case / "BraTS-GLI-00002-000" / f"BraTS-GLI-00002-000-{m}.nii.gz")
    cases = scan_folder(str(per_case), ".nii.gz")
    assert sorted(cases) == ["BraTS-GLI-00001-000", "BraTS-GLI-00002-000"]
    assert sorted(cases["BraTS-GLI-00001-000"]) == ["FLAIR", "T1", "T1ce", "T2"]
    assert sorted(cases["BraTS-GLI-00002-000"]) == ["T1", "T2"]

    flat = tmp_path / "flat"
    for m in ("t1", "t1ce", "t2", "flair"):
        _touch(flat / f"BraTS2021_00001_{m}.nii.gz")
    _touch(flat / ".DS_Store")
    # channels of a dataset named the 2023 way, in an unusual order
    mods = ["FLAIR", "T1", "T1ce", "T2"]
    (case,) = brats_input_cases(str(flat), ".nii.gz", mods)
    assert case.name == "BraTS2021_00001"
    assert [f.rsplit("_", 1)[1] for f in case.files] == ["flair.nii.gz", "t1.nii.gz", "t1ce.nii.gz", "t2.nii.gz"]

    _touch(flat / "BraTS2021_00001_t1gd.nii.gz")
    with pytest.raises(UserInputError, match=r"BraTS2021_00001_t1gd.nii.gz is not a BraTS file name.*-t1n, -t1c"):
        scan_folder(str(flat), ".nii.gz")


def test_modalities_by_dataset_name_or_alias():
    mods = ["T1", "T1ce", "T2", "FLAIR"]
    assert resolve_modalities(["T2", "flair"], mods) == [False, False, True, True]
    assert resolve_modalities(["t1c", "t2f"], mods) == [False, True, False, True]
    with pytest.raises(UserInputError, match="--modalities PD: the dataset has no such channel"):
        resolve_modalities(["PD"], mods)


@pytest.mark.parametrize("dataset", [REGION_BASED, LABEL_BASED_NAMES])
def test_challenge_labels_both_years_both_conventions(dataset):
    # dataset labels 1 edema, 2 necrosis, 3 enhancing in both conventions
    assert subregion_labels(dataset) == {"edema": 1, "necrosis": 2, "enhancing": 3}
    assert challenge_lookup(dataset, "2021")[MAP].tolist() == [[0, 2, 1, 4]]
    assert challenge_lookup(dataset, "2023")[MAP].tolist() == [[0, 2, 1, 3]]


def test_label_based_2023_names_convert_to_themselves():
    assert challenge_lookup(LABEL_BASED_2023, "2023")[MAP].tolist() == [[0, 1, 2, 3]]
    assert challenge_lookup(LABEL_BASED_2023, "2021")[MAP].tolist() == [[0, 1, 2, 4]]


def test_region_order_decides_the_written_values():
    """Class order 3, 2, 1 for whole tumor, tumor core, enhancing: nnU-Net writes 3 for edema and 1 for enhancing,
    so a conversion that assumed Dataset137's 1/2/3 would swap edema and enhancing."""
    permuted = {"labels": {"background": 0, "whole tumor": [1, 2, 3], "tumor core": [2, 3], "enhancing tumor": [3]},
                "regions_class_order": [3, 2, 1]}
    assert subregion_labels(permuted) == {"edema": 3, "necrosis": 2, "enhancing": 1}
    assert challenge_lookup(permuted, "2021")[MAP].tolist() == [[0, 4, 1, 2]]
    assert challenge_lookup(permuted, "2023")[MAP].tolist() == [[0, 3, 1, 2]]


def test_datasets_that_are_not_tumour_subregions():
    with pytest.raises(UserInputError, match=r"missing: edema, necrosis, enhancing.*\"edema\": 1"):
        challenge_lookup({"labels": {"background": 0, "liver": 1, "tumour": 2}}, "2023")
    with pytest.raises(UserInputError, match="not the nested BraTS regions"):
        subregion_labels({"labels": {"background": 0, "a": [1, 2], "b": [2]}, "regions_class_order": [1, 2]})


def test_label_based_brats_dataset_is_scored_on_wt_tc_et_and_its_labels():
    from nnunetv2.utilities.label_handling.label_handling import LabelManager

    regions = region_names(LABEL_BASED_2023, LabelManager(LABEL_BASED_2023["labels"], None))
    assert regions == [("WT", (2, 1, 3)), ("TC", (1, 3)), ("ET", (3,)), ("label NETC", 1), ("label SNFH", 2),
                       ("label ET", 3)]
    other = {"labels": {"background": 0, "liver": 1}}
    assert region_names(other, LabelManager(other["labels"], None)) == [("liver", 1)]


def test_written_predictions_get_the_challenge_labels(tmp_path):
    """predict's last step on a staged segmentation holding every dataset label: each voxel converted (2023: edema
    1 -> 2, necrosis 2 -> 1, enhancing 3 -> 3; 2021: enhancing -> 4), the staged file gone, geometry kept; a label
    the table does not know is refused."""
    import SimpleITK as sitk
    from nnunetv2.imageio.simpleitk_reader_writer import SimpleITKIO

    from nnunetv2_mtg.predict import convert_labels

    seg = np.array([0, 1, 2, 3, 1, 2], dtype=np.uint8).reshape(1, 2, 3)
    for year, expected in (("2023", [0, 2, 1, 3, 2, 1]), ("2021", [0, 2, 1, 4, 2, 1])):
        staging, out = tmp_path / year / "staging", tmp_path / year / "out"
        staging.mkdir(parents=True)
        out.mkdir()
        image = sitk.GetImageFromArray(seg)
        image.SetSpacing((2.0, 3.0, 4.0))
        sitk.WriteImage(image, str(staging / "case.nii.gz"))
        convert_labels(str(staging), str(out), ["case"], ".nii.gz", SimpleITKIO(), challenge_lookup(REGION_BASED, year))
        written = sitk.ReadImage(str(out / "case.nii.gz"))
        assert sitk.GetArrayFromImage(written).ravel().tolist() == expected, year
        assert written.GetSpacing() == (2.0, 3.0, 4.0) and not (staging / "case.nii.gz").exists()
    sitk.WriteImage(sitk.GetImageFromArray(np.full((1, 2, 3), 7, np.uint8)), str(staging / "bad.nii.gz"))
    with pytest.raises(RuntimeError, match="holds label 7"):
        convert_labels(str(staging), str(out), ["bad"], ".nii.gz", SimpleITKIO(),
                       challenge_lookup(REGION_BASED, "2021"))
