"""`nnUNetv2_mtg_predict`: nnU-Net's prediction from whatever channel files each case has.

nnU-Net's own predictor does the work (its preprocessing workers, sliding window, export, file names,
probabilities); this module only changes what a case is: per case the channel files that exist (or those of
`--modalities`), the others missing. A missing channel is read as zeros with the case's geometry and set to 0
after nnU-Net's normalisation, the value training (modality masking) and `nnUNetv2_mtg_evaluate` use. Two hooks
of nnU-Net's predictor carry that: its configuration's preprocessor class (wrapped, see
`MissingChannelConfiguration`) and its data iterator (a whole case of zeros is refused).

Every check that needs only the files' names and headers (channels, geometry, modality names, label meaning,
output folder) runs for all cases before the first prediction. A case whose channels are all zero needs the
voxels, so it is refused when nnU-Net preprocesses it, before its file is written. With `--brats-labels` the
predictions are written to a staging folder inside -o, converted, and only then moved into -o, so -o never holds
a file with the dataset's own labels.
"""
from __future__ import annotations

import argparse
import functools
import json
import multiprocessing
import os
import shutil
import sys
from dataclasses import dataclass

import numpy as np
import torch
from nnunetv2.inference.predict_from_raw_data import nnUNetPredictor
from nnunetv2.utilities.plans_handling.plans_handler import ConfigurationManager

from nnunetv2_mtg.atomic import atomic_path, write_json
from nnunetv2_mtg.env import UserInputError, train_command
from nnunetv2_mtg.expectations import SUMMARY_FILE, read_subset_summary
from nnunetv2_mtg.masking import zero_channels

RECORD = "mtg_predict"
STAGING = ".mtg_predict_staging"
EMPTY_KEY = "mtg_all_channels_zero"


@dataclass(frozen=True)
class InputCase:
    name: str
    files: tuple[str | None, ...]  # one per dataset channel; None = missing


# ---- reading cases


def nnunet_cases(folder: str, ending: str, n_channels: int) -> list[InputCase]:
    """Cases of an nnU-Net-style folder (CASE_0000.nii.gz, CASE_0001.nii.gz, ...), any channel file may be absent."""
    cases: dict[str, list[str | None]] = {}
    for name in sorted(os.listdir(folder)):
        if not name.endswith(ending) or name.startswith("."):
            continue
        stem = name[: -len(ending)]
        case, _, channel = stem.rpartition("_")
        if not case or len(channel) != 4 or not channel.isdigit():
            raise UserInputError(f"{os.path.join(folder, name)} is not named CASE_XXXX{ending} (XXXX = the channel "
                                 f"number), as nnU-Net expects. For BraTS file names use --brats-names.")
        if int(channel) >= n_channels:
            raise UserInputError(f"{os.path.join(folder, name)}: channel {int(channel)} does not exist, the dataset has "
                                 f"channels 0..{n_channels - 1}.")
        cases.setdefault(case, [None] * n_channels)[int(channel)] = os.path.join(folder, name)
    return [InputCase(k, tuple(v)) for k, v in cases.items()]


def brats_input_cases(folder: str, ending: str, modalities: list[str]) -> list[InputCase]:
    """Cases of a folder in the challenge's naming (brats.py), mapped to the dataset's channels."""
    from nnunetv2_mtg.brats import scan_folder
    from nnunetv2_mtg.modalities import BRATS_MODALITIES, normalise

    channel_of = {}
    for modality in BRATS_MODALITIES:
        hits = [c for c, m in enumerate(modalities) if normalise(m) == normalise(modality)]
        channel_of[modality] = hits[0] if hits else None
    if any(v is None for v in channel_of.values()):
        raise UserInputError(f"--brats-names needs a dataset with the BraTS modalities {', '.join(BRATS_MODALITIES)}; "
                             f"this one has {', '.join(modalities)}.")
    out = []
    for case, files in scan_folder(folder, ending).items():
        per_channel = [None] * len(modalities)
        for modality, path in files.items():
            per_channel[channel_of[modality]] = path
        out.append(InputCase(case, tuple(per_channel)))
    return out


def restrict(cases: list[InputCase], keep: list[bool]) -> list[InputCase]:
    """Only the channels of `--modalities`, whatever other files exist."""
    return [InputCase(c.name, tuple(f if k else None for f, k in zip(c.files, keep))) for c in cases]


def resolve_modalities(wanted: list[str], modalities: list[str]) -> list[bool]:
    from nnunetv2_mtg.modalities import modality_key as key

    known = {key(m): i for i, m in enumerate(modalities)}
    keep = [False] * len(modalities)
    for w in wanted:
        if key(w) not in known:
            raise UserInputError(f"--modalities {w}: the dataset has no such channel; its channels are "
                                 f"{', '.join(modalities)} (BraTS aliases such as t1c, t2f, t1gd work too).")
        keep[known[key(w)]] = True
    return keep


def check_cases(cases: list[InputCase], modalities: list[str]) -> None:
    """Before any output: every case has a channel file, and a case's files share one geometry."""
    import SimpleITK as sitk

    if not cases:
        raise UserInputError("no case found in the input folder")
    for case in cases:
        present = [f for f in case.files if f is not None]
        if not present:
            raise UserInputError(f"case {case.name} has no usable channel file (the dataset's channels are "
                                 f"{', '.join(modalities)}); nothing to predict from.")
        geometry = {}
        for f in present:
            reader = sitk.ImageFileReader()
            reader.SetFileName(f)
            try:
                reader.ReadImageInformation()
            except RuntimeError as e:
                raise UserInputError(f"case {case.name}: {f} cannot be read ({str(e).strip().splitlines()[-1]})") \
                    from None
            geometry[f] = {"size": reader.GetSize(), "spacing": reader.GetSpacing(), "origin": reader.GetOrigin(),
                           "direction": reader.GetDirection()}
        first = present[0]
        for f in present[1:]:
            for what in ("size", "spacing", "origin", "direction"):
                a, b = geometry[first][what], geometry[f][what]
                if len(a) != len(b) or not np.allclose(a, b, atol=1e-4 if what != "size" else 0):
                    raise UserInputError(f"case {case.name}: the channel files differ in {what}: {first} has {a}, "
                                         f"{f} has {b}. All channels of a case must be on the same grid "
                                         f"(co-register and resample them first).")


def check_output_folder(images: str, out: str) -> None:
    i, o = os.path.realpath(images), os.path.realpath(out)
    if o == i or o.startswith(i + os.sep):
        raise UserInputError(f"-o {out} is the input folder or inside it; the input is never written to. Choose an "
                             f"output folder outside {images}.")


# ---- the two hooks into nnU-Net's predictor


class MissingChannelPreprocessor:
    """The plans' preprocessor, for a file list with "" where a channel is missing (a string, so that nnU-Net's
    own bookkeeping of file lists keeps working): the present channels are read, the missing ones are zeros on the
    same grid, nnU-Net preprocesses them, and the missing channels are set to 0 after its normalisation."""

    def __init__(self, inner_class: type, verbose: bool = False):
        self.inner = inner_class(verbose=verbose)

    def run_case(self, image_files: list[str], seg_file: str | None, plans_manager, configuration_manager,
                 dataset_json: dict):
        present = [bool(f) for f in image_files]
        rw = plans_manager.image_reader_writer_class()
        images, properties = rw.read_images([f for f in image_files if f])
        data = np.zeros((len(image_files), *images.shape[1:]), dtype=np.float32)
        data[present] = images
        seg = rw.read_seg(seg_file)[0] if seg_file is not None else None
        data, seg, properties = self.inner.run_case_npy(data, seg, properties, plans_manager, configuration_manager,
                                                        dataset_json)
        data = zero_channels(data, present)
        if not np.any(data):
            if multiprocessing.parent_process() is None:  # sequential mode: the error reaches the user from here
                raise UserInputError(empty_case_message([f for f in image_files if f]))
            properties[EMPTY_KEY] = [f for f in image_files if f]  # a worker: the main process refuses it
        return data, seg, properties


def empty_case_message(files: list[str]) -> str:
    return (f"every channel of this case is zero everywhere ({', '.join(files)}): there is nothing to segment. "
            f"Remove the case or fix its files; cases predicted before it are complete in -o, and "
            f"--continue_prediction skips them.")


class MissingChannelConfiguration(ConfigurationManager):
    """nnU-Net's configuration whose preprocessor reads missing channels as zeros (MissingChannelPreprocessor)."""

    @property
    def preprocessor_class(self):
        return functools.partial(MissingChannelPreprocessor, super().preprocessor_class)


def _refuse_empty(data_iterator):
    for item in data_iterator:
        files = item["data_properties"].get(EMPTY_KEY)
        if files:
            raise UserInputError(empty_case_message(files))
        yield item


class MissingModalityPredictor(nnUNetPredictor):
    """nnU-Net's predictor for cases with missing channel files ("" in a case's file list)."""

    def initialize_from_trained_model_folder(self, model_training_output_dir: str, use_folds, checkpoint_name: str):
        super().initialize_from_trained_model_folder(model_training_output_dir, use_folds, checkpoint_name)
        self.configuration_manager = MissingChannelConfiguration(self.configuration_manager.configuration)

    def predict_from_data_iterator(self, data_iterator, save_probabilities: bool = False,
                                   num_processes_segmentation_export: int = 3):
        return super().predict_from_data_iterator(_refuse_empty(data_iterator), save_probabilities,
                                                  num_processes_segmentation_export)


# ---- what the model was trained on, and the record


def trained_subsets(trainer_name: str, modalities: list[str]) -> list[tuple[bool, ...]] | None:
    """The channel subsets a trainer's models saw in training; None = all of them (modality masking)."""
    from nnunetv2.utilities.find_objects import recursive_find_trainer_class_by_name

    from nnunetv2_mtg.modalities import enumerate_subsets, find_subsets

    cls = recursive_find_trainer_class_by_name(trainer_name)
    if cls is None or not hasattr(cls, "mask_in_data_loader"):  # a stock trainer: always every modality
        return [tuple([True] * len(modalities))]
    fixed = getattr(cls, "fixed_subset", None)
    if fixed is not None:
        return [find_subsets(enumerate_subsets(modalities), [fixed])[0].mask]
    return None


def record_rows(cases: list[InputCase], modalities: list[str], outputs: list[str], trained,
                channel_names: list[str] | None = None, expected: dict | None = None) -> list[dict]:
    """One record row per case: its channels (named as the dataset does, the canonical name beside where they
    differ), the file written, and warnings: a subset the model never trained on; a region whose Dice the model's
    evaluation (`expected`, mtg_subsets.json) puts far below the full input."""
    from nnunetv2_mtg.expectations import channel_label, expectation

    labels = [channel_label(n, m) for n, m in zip(channel_names or modalities, modalities)]
    rows = []
    for case, out in zip(cases, outputs):
        mask = tuple(f is not None for f in case.files)
        used = [m for m, p in zip(labels, mask) if p]
        missing = [m for m, p in zip(labels, mask) if not p]
        warnings = []
        if trained is not None and mask not in trained:
            seen = " or ".join("+".join(m for m, p in zip(labels, t) if p) for t in trained)
            warnings.append(f"the model was trained on {seen} only, never on {'+'.join(used)}: expect a worse "
                            f"segmentation than the table of nnUNetv2_mtg_evaluate suggests")
        dice = ""
        if expected is not None:
            dice, weak = expectation(expected, mask, missing)
            warnings += [weak] if weak else []
        rows.append({"case": case.name, "channels_used": "+".join(used), "channels_missing": "+".join(missing),
                     "expected_dice": dice, "file": out, "inputs": " ".join(f for f in case.files if f),
                     "warning": "; ".join(warnings)})
    return rows


def write_record(out: str, rows: list[dict], model: dict) -> None:
    from nnunetv2_mtg.report import write_csv_atomic

    path = os.path.join(out, RECORD + ".json")
    write_json(path, {"model": model, "cases": rows})
    write_csv_atomic(os.path.join(out, RECORD + ".csv"), tuple(rows[0]), rows)


def convert_labels(staging: str, out: str, names: list[str], ending: str, reader_writer, lookup: np.ndarray) -> None:
    """Move the staged predictions into -o, segmentations converted to the challenge's labels."""
    for name in names:
        src = os.path.join(staging, name + ending)
        seg, props = reader_writer.read_seg(src)
        values = seg[0].astype(np.int64)
        if values.max() >= len(lookup) or values.min() < 0:
            raise RuntimeError(f"{src} holds label {values.max()}, which the conversion table does not know")
        tmp = os.path.join(staging, name + ".converted" + ending)
        reader_writer.write_seg(lookup[values], tmp, props)
        os.replace(tmp, os.path.join(out, name + ending))
        for extra in (".npz", ".pkl"):  # probabilities, when asked for: in the dataset's own channel order
            if os.path.isfile(os.path.join(staging, name + extra)):
                os.replace(os.path.join(staging, name + extra), os.path.join(out, name + extra))
        os.remove(src)


def write_pictures(out: str, predicted: str, cases: list[InputCase], rows: list[dict], ending: str, reader_writer,
                   dataset_json: dict) -> None:
    """<case>.png in `out` for each case: its channels (the missing ones named), the prediction in `predicted` (the
    dataset's own labels) over the first present channel, on the slice with the most predicted tumour."""
    from nnunetv2_mtg.expectations import channel_label
    from nnunetv2_mtg.figures import draw_case, label_colours
    from nnunetv2_mtg.modalities import channel_names, modality_names

    colours = label_colours(dataset_json)
    labels = [channel_label(n, m) for n, m in zip(channel_names(dataset_json), modality_names(dataset_json))]
    record = {r["case"]: r for r in rows}
    for case in cases:
        channels = [reader_writer.read_images([f])[0][0] if f else None for f in case.files]
        seg = reader_writer.read_seg(os.path.join(predicted, case.name + ending))[0][0]
        path = os.path.join(out, case.name + ".png")
        with atomic_path(path) as tmp:
            draw_case(tmp, channels, labels, seg, colours, title=f"{case.name} from {record[case.name]['channels_used']}")
    print(f"{len(cases)} picture(s) of the predictions: {os.path.join(out, '<case>.png')}")


# ---- the command


@dataclass(frozen=True)
class Request:
    """A prediction every check has passed: the model folder and its folds, the dataset's description, the cases
    with their channel files, and the challenge's label lookup (None: the dataset's own labels)."""

    model: str
    folds: list
    dataset_json: dict
    cases: list[InputCase]
    lookup: np.ndarray | None

    @property
    def modalities(self) -> list[str]:
        from nnunetv2_mtg.modalities import modality_names

        return modality_names(self.dataset_json)

    @property
    def ending(self) -> str:
        return self.dataset_json["file_ending"]


def check_request(args: argparse.Namespace) -> Request:
    """Every check that needs only names and headers, before anything is written."""
    from nnunetv2.utilities.dataset_name_id_conversion import maybe_convert_to_dataset_name
    from nnunetv2.utilities.file_path_utilities import get_output_folder

    from nnunetv2_mtg.brats import challenge_lookup
    from nnunetv2_mtg.env import require_env_folder
    from nnunetv2_mtg.modalities import modality_names

    if not os.path.isdir(args.i):
        raise UserInputError(f"input folder {args.i} does not exist")
    check_output_folder(args.i, args.o)
    require_env_folder("nnUNet_results")
    try:
        maybe_convert_to_dataset_name(args.d)
    except RuntimeError as e:
        raise UserInputError(str(e)) from None
    model = get_output_folder(args.d, args.tr, args.p, args.c)
    if not os.path.isfile(os.path.join(model, "dataset.json")):
        raise UserInputError(f"no trained model in {model}. Train it with "
                             f"{train_command(args.d, args.c, 'FOLD', args.tr, args.p)}")
    folds = [f if f == "all" else int(f) for f in args.f]
    for f in folds:
        if not os.path.isfile(os.path.join(model, f"fold_{f}", args.chk)):
            raise UserInputError(f"{os.path.join(model, f'fold_{f}', args.chk)} does not exist: train fold {f} first "
                                 f"or choose other folds with -f.")
    with open(os.path.join(model, "dataset.json")) as f:
        dataset_json = json.load(f)
    modalities = modality_names(dataset_json)
    ending = dataset_json["file_ending"]
    cases = brats_input_cases(args.i, ending, modalities) if args.brats_names else \
        nnunet_cases(args.i, ending, len(modalities))
    if args.modalities:
        cases = restrict(cases, resolve_modalities(args.modalities, modalities))
    lookup = challenge_lookup(dataset_json, args.brats_labels) if args.brats_labels else None
    check_cases(cases, modalities)
    return Request(model, folds, dataset_json, cases, lookup)


def print_cases(args: argparse.Namespace, request: Request, rows: list[dict], expected: dict | None) -> None:
    """Where the expected Dice comes from (or the command that makes it), then each case's channels, expected Dice
    and warnings."""
    if expected is None:
        print(f"no evaluation of this model, so no expected Dice per case: `nnUNetv2_mtg_evaluate -d {args.d} "
              f"-c {args.c} -p {args.p} -tr {args.tr} -f {' '.join(args.f)}` makes one ({SUMMARY_FILE} in "
              f"{request.model})")
    else:
        print(f"expected Dice per case from the model's evaluation ({expected['cases']} cases, folds "
              f"{' '.join(map(str, expected['folds']))}, {expected['written']})")
    for r in rows:
        print(f"{r['case']}: {r['channels_used'] or '-'} (missing: {r['channels_missing'] or 'none'})"
              + (f"  expected Dice {r['expected_dice']}" if r["expected_dice"] else "")
              + (f"  WARNING: {r['warning']}" if r["warning"] else ""))


def predict_cases(args: argparse.Namespace, request: Request, todo: list[InputCase], target: str,
                  rows: list[dict]) -> None:
    """nnU-Net's predictor (threads set as nnUNetv2_predict sets them) on `todo` into `target`; then the pictures
    and, with a label lookup, the conversion of `target`'s files into -o."""
    device = torch.device(args.device)
    if device.type == "cpu":
        torch.set_num_threads(multiprocessing.cpu_count())
    elif device.type == "cuda":
        torch.set_num_threads(1)
        torch.set_num_interop_threads(1)
    predictor = MissingModalityPredictor(tile_step_size=args.step_size, use_gaussian=True,
                                         use_mirroring=not args.disable_tta,
                                         perform_everything_on_device=device.type == "cuda", device=device,
                                         verbose=False, allow_tqdm=not args.disable_progress_bar)
    predictor.initialize_from_trained_model_folder(request.model, request.folds, args.chk)
    lists = [[f or "" for f in c.files] for c in todo]
    truncated = [os.path.join(target, c.name) for c in todo]
    if args.npp == 0 and args.nps == 0:
        predictor.predict_from_files_sequential(lists, truncated, args.save_probabilities, True)
    else:
        predictor.predict_from_files(lists, truncated, args.save_probabilities, True, max(args.npp, 1),
                                     max(args.nps, 1))
    reader_writer = predictor.plans_manager.image_reader_writer_class()
    if args.save_png:
        write_pictures(args.o, target, todo, rows, request.ending, reader_writer, request.dataset_json)
    if request.lookup is not None:
        convert_labels(target, args.o, [c.name for c in todo], request.ending, reader_writer, request.lookup)
        for name in ("dataset.json", "plans.json", "predict_from_raw_data_args.json"):
            if os.path.isfile(os.path.join(target, name)):
                os.replace(os.path.join(target, name), os.path.join(args.o, name))


def run(args: argparse.Namespace) -> list[dict]:
    """Options -> checks (check_request) -> prediction of the cases not already there -> the record; returns the
    record's rows."""
    from nnunetv2_mtg.modalities import channel_names

    request = check_request(args)
    # checks done: from here on, output is written
    modalities, ending = request.modalities, request.ending
    trained = trained_subsets(args.tr, modalities)
    expected = read_subset_summary(request.model)
    rows = record_rows(request.cases, modalities, [os.path.join(args.o, c.name + ending) for c in request.cases],
                       trained, channel_names(request.dataset_json), expected)
    print_cases(args, request, rows, expected)

    def done(c: InputCase) -> bool:
        files = [c.name + ending] + ([c.name + ".npz"] if args.save_probabilities else [])
        return all(os.path.isfile(os.path.join(args.o, f)) for f in files)

    todo = [c for c in request.cases if not (args.continue_prediction and done(c))]
    os.makedirs(args.o, exist_ok=True)
    target = os.path.join(args.o, STAGING) if request.lookup is not None else args.o
    if request.lookup is not None:
        shutil.rmtree(target, ignore_errors=True)  # leftovers of an interrupted run are not trusted
        os.makedirs(target)
    if todo:
        predict_cases(args, request, todo, target, rows)
    if request.lookup is not None:
        shutil.rmtree(target)
    write_record(args.o, rows, {"folder": request.model, "folds": args.f, "checkpoint": args.chk,
                                "brats_labels": args.brats_labels,
                                "expected_dice_from": None if expected is None else
                                {k: expected[k] for k in ("folds", "cases", "case_source", "checkpoint", "written")},
                                "trained_subsets": "all" if trained is None else
                                ["+".join(m for m, p in zip(modalities, t) if p) for t in trained]})
    print(f"{len(todo)} case(s) predicted, {len(request.cases) - len(todo)} already there; record in "
          f"{os.path.join(args.o, RECORD + '.json')}")
    return rows


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description="nnU-Net prediction for cases with missing modalities: per case the "
                                            "channel files that exist are used, the others are zero after "
                                            "normalisation (as in training). Arguments as nnUNetv2_predict's.")
    p.add_argument("-i", required=True, help="input folder: CASE_XXXX files as nnU-Net names them (any may be "
                                             "missing), or BraTS files with --brats-names")
    p.add_argument("-o", required=True, help="output folder (not the input folder or inside it)")
    p.add_argument("-d", required=True, help="dataset name or ID")
    p.add_argument("-p", default="nnUNetPlans", help="plans identifier (default nnUNetPlans)")
    p.add_argument("-tr", default="nnUNetTrainer", help="trainer (default nnUNetTrainer)")
    p.add_argument("-c", required=True, help="configuration")
    p.add_argument("-f", nargs="+", default=["0", "1", "2", "3", "4"], help="folds (default 0 1 2 3 4)")
    p.add_argument("-step_size", type=float, default=0.5, help="sliding window step (default 0.5)")
    p.add_argument("--disable_tta", action="store_true", help="no test-time mirroring")
    p.add_argument("--save_probabilities", action="store_true", help="also write the probabilities (.npz/.pkl)")
    p.add_argument("--continue_prediction", action="store_true", help="skip cases whose output exists")
    p.add_argument("--save_png", action="store_true", help="also write <case>.png: the axial slice with the most "
                                                           "predicted tumour, every channel (missing ones named), "
                                                           "the prediction over it")
    p.add_argument("-chk", default="checkpoint_final.pth", help="checkpoint name (default checkpoint_final.pth)")
    p.add_argument("-npp", type=int, default=int(os.environ.get("nnUNet_npp", 3)), help="preprocessing processes")
    p.add_argument("-nps", type=int, default=int(os.environ.get("nnUNet_nps", 3)), help="export processes")
    p.add_argument("-device", default="cuda", choices=["cuda", "cpu", "mps"], help="default cuda")
    p.add_argument("--disable_progress_bar", action="store_true")
    p.add_argument("--modalities", nargs="+", default=None,
                   help="use only these channels (names as in dataset.json or BraTS aliases), even when more exist")
    p.add_argument("--brats-names", action="store_true",
                   help="read BraTS folders as shipped (-t1n/-t1c/-t2w/-t2f or _t1/_t1ce/_t2/_flair), one folder per "
                        "case or flat; outputs are <case id>" + ".nii.gz")
    p.add_argument("--brats-labels", choices=["2021", "2023"], default=None,
                   help="write the challenge's labels: 2021 = 1 NCR, 2 ED, 4 ET; 2023 (and later) = 1 NETC, 2 SNFH, 3 ET")
    args = p.parse_args(argv)
    try:
        run(args)
    except UserInputError as e:
        sys.exit(f"nnUNetv2_mtg_predict: error: {e}")


if __name__ == "__main__":
    main()
