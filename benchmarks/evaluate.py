"""Wall time of the 15-subset evaluation against what it cannot avoid: one preprocessing of the cases plus
15 inference passes of nnU-Net's predictor over them (sliding window + export to image space).

    python benchmarks/evaluate.py [--device cpu|cuda] [--cases N] [--workspace DIR]

Prints ratio = evaluation wall time / (preprocessing + 15 x inference pass), all measured in this run on
the same cases and model (goal: <= 1.15). The model is nnUNetTrainerMTGTeacher_smoke on cpu_tiny plans,
trained here first if the workspace has none.
"""
from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from workspace import BIN, make_workspace  # noqa: E402  (sets nnU-Net's variables before nnunetv2 is imported)

TRAINER = "nnUNetTrainerMTGTeacher_smoke"
PLANS = "nnUNetPlans_cpu_tiny"


def main(argv: list[str] | None = None) -> float:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--device", choices=["cpu", "cuda"], default="cpu")
    p.add_argument("--cases", type=int, default=8, help="test cases of the phantom to evaluate")
    p.add_argument("--workspace", default=None, help="reuse this workspace folder (default: a new temp dir)")
    a = p.parse_args(argv)
    ws = make_workspace(991, n_train=6, n_test=a.cases, root=a.workspace)

    import torch
    from nnunetv2.inference.export_prediction import convert_predicted_logits_to_segmentation_with_correct_shape

    from nnunetv2_mtg import evaluate
    from nnunetv2_mtg.cases import PreprocessedCases, check_trained, folder_cases, load_predictor

    device = torch.device(a.device)
    try:
        folder = check_trained(ws["name"], TRAINER, PLANS, "3d_fullres", 0, "checkpoint_final.pth")
    except Exception:
        subprocess.run([os.path.join(BIN, "nnUNetv2_train"), str(ws["id"]), "3d_fullres", "0", "-tr", TRAINER,
                        "-p", PLANS, "-device", a.device], check=True, stdout=subprocess.DEVNULL)
        folder = check_trained(ws["name"], TRAINER, PLANS, "3d_fullres", 0, "checkpoint_final.pth")
    images, labels = os.path.join(ws["raw"], "imagesTs"), os.path.join(ws["raw"], "labelsTs")
    predictor = load_predictor(folder, 0, "checkpoint_final.pth", device, mirror=device.type == "cuda")
    cases = folder_cases(images, labels, predictor.dataset_json)

    # what cannot be avoided: one preprocessing, then 15 inference passes (timed once, times 15)
    scratch = tempfile.mkdtemp(prefix="mtg_eval_bench_")
    t0 = time.perf_counter()
    store = PreprocessedCases(scratch, predictor.plans_manager, predictor.configuration_manager, predictor.dataset_json)
    store.prepare(cases)
    t_pre = time.perf_counter() - t0
    t0 = time.perf_counter()
    for case in cases:
        data, props = store.load(case)
        logits = predictor.predict_logits_from_preprocessed_data(data)
        convert_predicted_logits_to_segmentation_with_correct_shape(
            logits, predictor.plans_manager, predictor.configuration_manager, predictor.label_manager, props)
    t_inf = time.perf_counter() - t0
    shutil.rmtree(scratch)

    out = tempfile.mkdtemp(prefix="mtg_eval_out_")
    t0 = time.perf_counter()
    evaluate.run(ws["name"], [TRAINER], [0], configuration="3d_fullres", plans=PLANS, out=out, device=device,
                 images=images, labels=labels, mirror=device.type == "cuda")
    t_eval = time.perf_counter() - t0
    shutil.rmtree(out)

    floor = t_pre + 15 * t_inf
    ratio = t_eval / floor
    print(f"device {a.device}, {len(cases)} cases: preprocessing {t_pre:.1f} s, one inference pass {t_inf:.1f} s, "
          f"15-subset evaluation {t_eval:.1f} s")
    print(f"ratio evaluation / (preprocessing + 15 x inference) = {ratio:.3f}")
    return ratio


if __name__ == "__main__":
    main()
