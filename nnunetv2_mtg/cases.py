"""Cases to evaluate, preprocessed once by nnU-Net's own preprocessor, and trained models to run on them.

Shared by the 15-subset evaluation and the modality-gap report: both run every modality subset of
the same cases, so each case is preprocessed once and kept on disk (not in memory: a BraTS validation
fold does not fit) for all subsets and all trainers.
"""
from __future__ import annotations

import json
import os
import pickle
import warnings
from dataclasses import dataclass

import numpy as np
import torch

from nnunetv2_mtg.atomic import atomic_path
from nnunetv2_mtg.env import UserInputError, require_env_folder, train_command


@dataclass(frozen=True)
class Case:
    name: str
    images: tuple[str, ...]
    label: str | None


def model_folder(dataset_name: str, trainer: str, plans: str, configuration: str) -> str:
    return os.path.join(require_env_folder("nnUNet_results"), dataset_name, f"{trainer}__{plans}__{configuration}")


def check_trained(dataset_name: str, trainer: str, plans: str, configuration: str, fold, checkpoint: str) -> str:
    """The model folder of a trained fold; a UserInputError with the training command otherwise."""
    folder = model_folder(dataset_name, trainer, plans, configuration)
    path = os.path.join(folder, f"fold_{fold}", checkpoint)
    if not os.path.isfile(path):
        raise UserInputError(f"no trained model: {path} does not exist. Train it with\n"
                             f"    {train_command(dataset_name, configuration, fold, trainer, plans)}")
    return folder


def validation_cases(dataset_name: str, fold: int, dataset_json: dict) -> list[Case]:
    """The validation cases of `fold` from nnU-Net's splits_final.json, with their raw images and labels."""
    from nnunetv2.utilities.utils import get_filenames_of_train_images_and_targets

    splits_file = os.path.join(require_env_folder("nnUNet_preprocessed"), dataset_name, "splits_final.json")
    if not os.path.isfile(splits_file):
        raise UserInputError(f"{splits_file} does not exist: nnU-Net writes it when training starts. Train a fold "
                             f"first, or pass -i IMAGES -l LABELS.")
    with open(splits_file) as f:
        splits = json.load(f)
    if not 0 <= fold < len(splits):
        raise UserInputError(f"fold {fold} is not in {splits_file} (it has folds 0..{len(splits) - 1})")
    raw = os.path.join(require_env_folder("nnUNet_raw"), dataset_name)
    files = get_filenames_of_train_images_and_targets(raw, dataset_json)
    return [Case(k, tuple(files[k]["images"]), files[k]["label"] if os.path.isfile(files[k]["label"]) else None)
            for k in sorted(splits[fold]["val"])]


def folder_cases(images: str, labels: str | None, dataset_json: dict) -> list[Case]:
    """Cases of an nnU-Net-style images folder (CASE_0000.nii.gz ...) with labels (CASE.nii.gz) beside."""
    from nnunetv2.utilities.utils import (create_lists_from_splitted_dataset_folder,
                                          get_identifiers_from_splitted_dataset_folder)

    ending = dataset_json["file_ending"]
    if not os.path.isdir(images):
        raise UserInputError(f"images folder {images} does not exist")
    names = get_identifiers_from_splitted_dataset_folder(images, ending)
    lists = create_lists_from_splitted_dataset_folder(images, ending, names)
    n_channels = len(dataset_json["channel_names"])
    cases = []
    for name, files in zip(names, lists):
        if len(files) != n_channels:
            raise UserInputError(f"case {name} in {images} has {len(files)} channel files, the dataset has "
                                 f"{n_channels} ({name}_0000{ending} ...)")
        label = os.path.join(labels, name + ending) if labels else None
        cases.append(Case(name, tuple(files), label if label and os.path.isfile(label) else None))
    return cases


def drop_unlabelled(cases: list[Case]) -> tuple[list[Case], list[str]]:
    """Cases with a label file, and the names of those without (warned about, counted in the summary)."""
    missing = [c.name for c in cases if c.label is None]
    for name in missing:
        warnings.warn(f"case {name} has no label file: skipped", stacklevel=2)
    return [c for c in cases if c.label is not None], missing


class PreprocessedCases:
    """nnU-Net's preprocessing of each case, done once and stored under `folder` as .npy + properties."""

    def __init__(self, folder: str, plans_manager, configuration_manager, dataset_json: dict):
        self.folder = folder
        self.pm, self.cm, self.dataset_json = plans_manager, configuration_manager, dataset_json
        os.makedirs(folder, exist_ok=True)

    def _paths(self, case: Case) -> tuple[str, str]:
        return os.path.join(self.folder, case.name + ".npy"), os.path.join(self.folder, case.name + ".pkl")

    def prepare(self, cases: list[Case]) -> None:
        """Preprocess the cases not done yet (with their label, when they have one). A case whose channels are
        all zero is refused: there is nothing to predict from."""
        from tqdm import tqdm

        todo = [c for c in cases if not os.path.isfile(self._paths(c)[1])
                or (c.label is not None and not os.path.isfile(self._seg_path(c)))]
        preprocessor = self.cm.preprocessor_class(verbose=False)
        for case in tqdm(todo, desc="preprocessing", disable=not todo):
            data, seg, props = preprocessor.run_case(list(case.images), case.label, self.pm, self.cm,
                                                     self.dataset_json)
            if not np.any(data):
                raise UserInputError(f"case {case.name}: every channel is zero everywhere ({', '.join(case.images)}); "
                                     f"there is nothing to segment. Remove the case or fix its files.")
            npy, pkl = self._paths(case)
            np.save(npy, data.astype(np.float32))
            if seg is not None:
                np.save(self._seg_path(case), seg.astype(np.int8))
            with atomic_path(pkl) as tmp, open(tmp, "wb") as f:  # the properties file marks the case as done
                pickle.dump(props, f)

    def _seg_path(self, case: Case) -> str:
        return os.path.join(self.folder, case.name + "_seg.npy")

    def segmentation(self, case: Case) -> np.ndarray:
        """The case's reference in preprocessed space (C=1, ...); -1 marks voxels nnU-Net cropped away."""
        return np.load(self._seg_path(case))

    def reference(self, case: Case) -> np.ndarray:
        """The case's reference label map in image space, read once and kept on disk as small integers
        (a validation fold of full-size references does not fit in memory either)."""
        path = os.path.join(self.folder, case.name + "_reference.npy")
        if not os.path.isfile(path):
            seg = self.pm.image_reader_writer_class().read_seg(case.label)[0][0]
            with atomic_path(path) as tmp:
                np.save(tmp, seg.astype(np.min_scalar_type(int(seg.max()))))
        return np.load(path)

    def load(self, case: Case) -> tuple[torch.Tensor, dict]:
        npy, pkl = self._paths(case)
        with open(pkl, "rb") as f:
            props = pickle.load(f)
        return torch.from_numpy(np.load(npy)), props


def load_predictor(folder: str, fold, checkpoint: str, device: torch.device, mirror: bool):
    """nnU-Net's predictor for one trained fold (it rebuilds the trainer's own network)."""
    from nnunetv2.inference.predict_from_raw_data import nnUNetPredictor

    predictor = nnUNetPredictor(tile_step_size=0.5, use_gaussian=True, use_mirroring=mirror,
                                perform_everything_on_device=device.type == "cuda", device=device,
                                verbose=False, allow_tqdm=False)
    predictor.initialize_from_trained_model_folder(folder, (fold,), checkpoint_name=checkpoint)
    return predictor


def default_device() -> torch.device:
    return torch.device("cuda") if torch.cuda.is_available() else torch.device("cpu")


def check_writable(out: str) -> None:
    """Fail before any work when the output folder cannot be written."""
    try:
        os.makedirs(out, exist_ok=True)
        probe = os.path.join(out, ".write_test")
        with open(probe, "w") as f:
            f.write("ok")
        os.remove(probe)
    except OSError as e:
        raise UserInputError(f"output folder {out} is not writable ({e.strerror}). Choose another one with -o.") from None


@dataclass
class Models:
    """Trained models of one dataset/plans/configuration/fold, with the dataset and plans they share."""

    dataset_name: str
    folders: dict[str, str]
    dataset_json: dict
    plans_manager: object
    configuration_manager: object
    out: str


def open_models(dataset: str, trainers: list[str], plans: str, configuration: str, folds: list, checkpoint: str,
                out: str | None, tool: str) -> Models:
    """Check every trainer is trained on every fold and `out` (default $nnUNet_results/DATASET/<tool>/...) is
    writable."""
    from nnunetv2.utilities.dataset_name_id_conversion import maybe_convert_to_dataset_name
    from nnunetv2.utilities.plans_handling.plans_handler import PlansManager

    results = require_env_folder("nnUNet_results")
    try:
        dataset_name = maybe_convert_to_dataset_name(dataset)
    except RuntimeError as e:
        raise UserInputError(str(e)) from None
    folders = {t: check_trained(dataset_name, t, plans, configuration, f, checkpoint) for f in folds for t in trainers}
    out = out or os.path.join(results, dataset_name, tool,
                              f"{plans}__{configuration}__fold_{'_'.join(str(f) for f in folds)}")
    check_writable(out)
    first = folders[trainers[0]]
    with open(os.path.join(first, "dataset.json")) as f:
        dataset_json = json.load(f)
    with open(os.path.join(first, "plans.json")) as f:
        pm = PlansManager(json.load(f))
    return Models(dataset_name, folders, dataset_json, pm, pm.get_configuration(configuration), out)
