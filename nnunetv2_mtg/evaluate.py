"""`nnUNetv2_mtg_evaluate`: Dice and HD95 of any nnU-Net model over all modality subsets, side by side.

For every subset (default: all 2^M - 1) and every case the missing channels are set to 0 after
nnU-Net's preprocessing (what our trainers see in training), nnU-Net's predictor runs the sliding
window and exports the segmentation to the original image space, and every region is scored against
the reference. Each case is preprocessed once for all subsets and trainers; each finished
(trainer, subset) is cached in OUT, so an interrupted run continues where it stopped.
"""
from __future__ import annotations

import argparse
import json
import os
import sys

import torch
from tqdm import tqdm

from nnunetv2_mtg import report, statistics
from nnunetv2_mtg.expectations import write_subset_summary
from nnunetv2_mtg.cases import (Case, PreprocessedCases, default_device, drop_unlabelled, folder_cases,
                                load_predictor, open_models, validation_cases)
from nnunetv2_mtg.env import UserInputError
from nnunetv2_mtg.masking import zero_channels
from nnunetv2_mtg.brats import challenge_lookup
from nnunetv2_mtg.metrics import lesionwise_scorer, region_names, score_case
from nnunetv2_mtg.modalities import Subset, enumerate_subsets, find_subsets, modality_names


def _safe(name: str) -> str:
    return name.replace("+", "_")


def evaluate_trainer(predictor, store: PreprocessedCases, cases: list[Case], subsets: list[Subset],
                     regions: list[tuple[str, object]], cache_dir: str, cache_key: dict,
                     save_predictions: str | None = None, lesionwise=None) -> list[dict]:
    """Per-case rows for every subset, reusing the cached subsets whose key matches. `lesionwise` = (scorer,
    table from the dataset's labels to the challenge's) adds the challenge's lesion-wise scores of WT/TC/ET."""
    from nnunetv2.inference.export_prediction import convert_predicted_logits_to_segmentation_with_correct_shape

    os.makedirs(cache_dir, exist_ok=True)
    key_file = os.path.join(cache_dir, "key.json")
    if os.path.isfile(key_file):
        with open(key_file) as f:
            if json.load(f) != cache_key:  # other model, fold, cases or settings: the cache is not ours to reuse
                for name in os.listdir(cache_dir):
                    if name.endswith(".csv"):
                        os.remove(os.path.join(cache_dir, name))
    with open(key_file, "w") as f:
        json.dump(cache_key, f, indent=1)

    rw = predictor.plans_manager.image_reader_writer_class()
    rows = []
    todo = [s for s in subsets if not os.path.isfile(os.path.join(cache_dir, _safe(s.name) + ".csv"))]
    bar = tqdm(total=len(todo) * len(cases), desc=f"{predictor.trainer_name}: subsets x cases")
    for subset in subsets:
        cached = os.path.join(cache_dir, _safe(subset.name) + ".csv")
        if os.path.isfile(cached):
            rows += report.read_csv(cached)
            continue
        subset_rows = []
        for case in cases:
            data, props = store.load(case)
            logits = predictor.predict_logits_from_preprocessed_data(zero_channels(data, subset.mask))
            seg = convert_predicted_logits_to_segmentation_with_correct_shape(
                logits, predictor.plans_manager, predictor.configuration_manager, predictor.label_manager, props)
            if save_predictions:
                folder = os.path.join(save_predictions, _safe(subset.name))
                os.makedirs(folder, exist_ok=True)
                rw.write_seg(seg, os.path.join(folder, case.name + predictor.dataset_json["file_ending"]), props)
            spacing = tuple(props["spacing"])
            reference = store.reference(case)
            lw = {}
            if lesionwise is not None:
                scorer, lookup = lesionwise
                lw = scorer(lookup[seg], lookup[reference], spacing)
            for region, (d, h) in score_case(seg, reference, regions, spacing).items():
                lw_d, lw_h = lw.get(region, ("", ""))
                subset_rows.append({"case": case.name, "subset": subset.name, "region": region,
                                    "dice": f"{d:.6f}", "hd95": f"{h:.4f}", "lesionwise_dice": lw_d,
                                    "lesionwise_hd95": lw_h})
            bar.update()
        report.write_csv_atomic(cached, report.SUBSET_FIELDS, subset_rows)
        rows += subset_rows
    bar.close()
    return rows


def run(dataset: str, trainers: list[str], folds: list, *, configuration: str = "3d_fullres",
        plans: str = "nnUNetPlans", out: str | None = None, device: torch.device | None = None,
        subset_names: list[str] | None = None, images: str | None = None, labels: str | None = None,
        mirror: bool | None = None, checkpoint: str = "checkpoint_final.pth", save_predictions: bool = False,
        reference: str | None = None, lesionwise: bool = False) -> dict:
    """Evaluate each trainer over the subsets on every fold; returns {trainer: summary} pooled over cases x folds.
    Writes everything into `out`; with several trainers also the paired comparison against `reference`."""
    reference = reference or trainers[0]
    if reference not in trainers:
        raise UserInputError(f"--reference {reference} is not one of the trainers (-tr {' '.join(trainers)})")
    if len(set(trainers)) != len(trainers) or len(set(folds)) != len(folds):
        raise UserInputError("a trainer or fold is named twice")
    m = open_models(dataset, trainers, plans, configuration, folds, checkpoint, out, "mtg_evaluation")
    dataset_name, folders, dataset_json, pm, cm, out = (m.dataset_name, m.folders, m.dataset_json, m.plans_manager,
                                                        m.configuration_manager, m.out)
    device = device or default_device()
    mirror = device.type == "cuda" if mirror is None else mirror
    all_subsets = enumerate_subsets(modality_names(dataset_json))
    subsets = find_subsets(all_subsets, subset_names) if subset_names else all_subsets
    subsets = [s for s in all_subsets if s in subsets]  # papers' order whatever the command line said
    if images is None and labels is not None:
        raise UserInputError("-l needs -i (the images of those labels)")
    if images is None and "all" in folds:
        raise UserInputError("fold 'all' has no validation cases: pass -i IMAGES -l LABELS")
    cases_per_fold = {f: folder_cases(images, labels, dataset_json) if images else
                      validation_cases(dataset_name, int(f), dataset_json) for f in folds}
    skipped = set()
    for f in folds:
        cases_per_fold[f], missing = drop_unlabelled(cases_per_fold[f])
        skipped.update(missing)
        if not cases_per_fold[f]:
            raise UserInputError("no case has a label file: nothing to score. Pass -l LABELS.")
    label_manager = pm.get_label_manager(dataset_json)
    regions = region_names(dataset_json, label_manager)
    region_list = [r for r, _ in regions]
    lw = (lesionwise_scorer(), challenge_lookup(dataset_json, "2023")) if lesionwise else None
    store = PreprocessedCases(os.path.join(out, "preprocessed"), pm, cm, dataset_json)
    store.prepare(sorted({c for cases in cases_per_fold.values() for c in cases}, key=lambda c: c.name))
    n_cases = len({c.name for cases in cases_per_fold.values() for c in cases})

    summaries, tables = {}, {}
    for trainer in trainers:
        rows = []
        for f in folds:
            predictor = load_predictor(folders[trainer], f, checkpoint, device, mirror)
            ckpt = os.path.join(folders[trainer], f"fold_{f}", checkpoint)
            key = {"checkpoint": ckpt, "mtime": os.path.getmtime(ckpt), "mirror": mirror,
                   "cases": [c.name for c in cases_per_fold[f]], "images": images, "lesionwise": lesionwise}
            target = os.path.join(out, trainer, f"fold_{f}")
            fold_rows = evaluate_trainer(predictor, store, cases_per_fold[f], subsets, regions,
                                         os.path.join(target, "cache"), key,
                                         os.path.join(target, "predictions") if save_predictions else None, lw)
            rows += [{**r, "fold": str(f)} for r in fold_rows]
            del predictor
        summary = report.summarise(rows, [s.name for s in subsets], region_list)
        summaries[trainer] = summary
        tables[trainer] = statistics.dice_table(rows)
        per_fold = statistics.fold_means(tables[trainer])
        target = os.path.join(out, trainer)
        report.write_csv_atomic(os.path.join(target, "per_case.csv"), report.PER_CASE_FIELDS, rows)
        report.write_csv_atomic(os.path.join(target, "summary.csv"), report.summary_fields(region_list),
                                report.summary_rows(summary, region_list, n_cases, len(skipped), folds))
        with open(os.path.join(target, "summary.md"), "w") as fh:
            fh.write(report.markdown_table(f"{trainer} ({dataset_name}, fold {', '.join(map(str, folds))})", summary,
                                           region_list, n_cases, len(skipped), per_fold))
        report.dice_heatmap(os.path.join(target, "dice_heatmap.png"), trainer, summary, region_list)
        write_subset_summary(folders[trainer], summary, subsets, region_list, folds, n_cases,
                             images or "the validation cases of each fold", checkpoint)
        if lesionwise:
            lw_rows = [{**r, "dice": r["lesionwise_dice"], "hd95": r["lesionwise_hd95"]} for r in rows
                       if r["region"] in ("WT", "TC", "ET")]
            with open(os.path.join(target, "summary_lesionwise.md"), "w") as fh:
                fh.write(report.markdown_table(f"{trainer}: BraTS lesion-wise scores (brats-evaluation)",
                                               report.summarise(lw_rows, [s.name for s in subsets], ["WT", "TC", "ET"]),
                                               ["WT", "TC", "ET"], n_cases, len(skipped)))
    if len(trainers) > 1:
        write_comparison(out, summaries, tables, reference, [s.name for s in subsets], region_list)
    print(f"results in {out}")
    return summaries


def write_comparison(out: str, summaries: dict, tables: dict, reference: str, subset_names: list[str],
                     region_list: list[str]) -> None:
    """comparison.md/.csv/.png in `out`: the trainers side by side and each one's paired differences to `reference`
    per subset and region (also used by benchmarks/accuracy.py on tables pooled from several runs)."""
    ordered = [reference] + [t for t in summaries if t != reference]
    differences = {t: {(s, r): statistics.paired_difference(tables[t], tables[reference], s, r)
                       for s in subset_names + [statistics.MEAN]
                       for r in region_list + [statistics.MEAN]}
                   for t in ordered[1:]}
    with open(os.path.join(out, "comparison.md"), "w") as fh:
        fh.write(report.comparison_table({t: summaries[t] for t in ordered}, region_list) + "\n" +
                 report.paired_tables(differences, reference, region_list))
    report.write_csv_atomic(os.path.join(out, "comparison.csv"), report.PAIRED_FIELDS,
                            report.paired_rows(differences, reference))
    report.comparison_heatmap(os.path.join(out, "comparison.png"), {t: summaries[t] for t in ordered}, region_list)


def parse_folds(values: list[str]) -> list:
    """nnU-Net's fold arguments: integers, or 'all'."""
    try:
        return [v if v == "all" else int(v) for v in values]
    except ValueError:
        raise UserInputError(f"folds must be integers or 'all', got {' '.join(values)}") from None


def add_model_arguments(p: argparse.ArgumentParser) -> None:
    """The arguments naming trained models, as nnU-Net's own commands spell them."""
    p.add_argument("-d", required=True, help="dataset name or ID")
    p.add_argument("-c", default="3d_fullres", help="configuration (default 3d_fullres)")
    p.add_argument("-p", default="nnUNetPlans", help="plans identifier (default nnUNetPlans)")
    p.add_argument("-tr", nargs="+", required=True, help="one or more trainers, compared side by side")
    p.add_argument("-f", nargs="+", default=["0"], help="fold(s) (default 0); several folds are pooled as repeats")
    p.add_argument("-chk", default="checkpoint_final.pth", help="checkpoint name (default checkpoint_final.pth)")
    p.add_argument("-device", default=None, choices=["cuda", "cpu", "mps"], help="default: cuda if available")


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description="Dice/HD95 of nnU-Net models over all modality subsets "
                                            "(CSV, Markdown, heatmaps in -o).")
    add_model_arguments(p)
    p.add_argument("-o", default=None, help="output folder (default $nnUNet_results/DATASET/mtg_evaluation/...)")
    p.add_argument("--subsets", nargs="+", default=None, help='subsets to run, e.g. "T1ce+FLAIR" T2 full')
    p.add_argument("-i", default=None, help="images folder (CASE_0000.nii.gz ...) instead of the fold's validation cases")
    p.add_argument("-l", default=None, help="labels folder for -i (CASE.nii.gz)")
    p.add_argument("--mirror", action=argparse.BooleanOptionalAction, default=None,
                   help="test-time mirroring (default: on with cuda, off on the CPU)")
    p.add_argument("--save_predictions", action="store_true", help="also write every subset's segmentations")
    p.add_argument("--reference", default=None, help="trainer the others are compared with (default: the first -tr)")
    p.add_argument("--lesionwise", action="store_true",
                   help="also the BraTS challenge's lesion-wise Dice and HD95 of WT/TC/ET, computed by its own package "
                        "(pip install 'nnunetv2-mtg[brats]')")
    a = p.parse_args(argv)
    try:
        run(a.d, a.tr, parse_folds(a.f), configuration=a.c, plans=a.p, out=a.o,
            device=torch.device(a.device) if a.device else None, subset_names=a.subsets, images=a.i, labels=a.l,
            mirror=a.mirror, checkpoint=a.chk, save_predictions=a.save_predictions, reference=a.reference,
            lesionwise=a.lesionwise)
    except UserInputError as e:
        sys.exit(f"nnUNetv2_mtg_evaluate: error: {e}")


if __name__ == "__main__":
    main()
