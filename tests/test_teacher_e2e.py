"""Stock nnUNetv2_train / nnUNetv2_predict with our trainers, found through nnUNet_extTrainer (resuming with --c:
test_forms_e2e)."""
import os
import re
import shutil

import numpy as np
from PIL import Image

from conftest import check_prediction, checkpoint, predict, run_cli


def _logged(fold, key):
    return [float(x) for log in sorted(f for f in os.listdir(fold) if f.startswith("training_log"))
            for x in re.findall(rf"{key} (-?[\d.]+|nan)", open(os.path.join(fold, log)).read())]


def test_teacher_trains_and_predicts(nnunet_env, phantom, mtg_teacher, tmp_path):
    trainer = "nnUNetTrainerMTGTeacherBottleneck_smoke"
    fold = mtg_teacher
    ckpt = checkpoint(fold)
    assert ckpt["trainer_name"] == trainer and ckpt["current_epoch"] == 2
    weights = ckpt["network_weights"]
    assert {k for k in weights if k.startswith("align.")} == {"align.3.mu.weight", "align.3.mu.bias",
                                                              "align.3.logvar.weight", "align.3.logvar.bias"}
    assert weights["encoder.stages.0.0.convs.0.conv.weight"].shape[0] == 8  # cpu_tiny network
    kl = ckpt["logging"]["train_kl_align"]
    assert len(kl) == 2 and all(np.isfinite(kl)) and all(v > 0 for v in kl)
    assert _logged(fold, "train_kl_align") == [round(v, 4) for v in kl]
    # progress.png: nnU-Net's three panels plus ours (a third taller than a stock one, 5400 px)
    assert Image.open(os.path.join(fold, "progress.png")).size[1] == 7200
    assert os.path.isfile(os.path.join(fold, "validation", "summary.json"))

    # stock nnUNetv2_predict rebuilds the aligned network from the trainer name
    out = tmp_path / "pred"
    images = os.path.join(phantom["raw"], "imagesTs")
    predict(nnunet_env, phantom, trainer, images, str(out), "--save_probabilities")
    cases = sorted(f for f in os.listdir(os.path.join(phantom["raw"], "labelsTs")))
    assert sorted(p for p in os.listdir(out) if p.endswith(".nii.gz")) == cases
    check_prediction(str(out), images, os.path.join(phantom["raw"], "labelsTs"))


def test_label_based_dataset_trains_and_is_scored_on_brats_regions(nnunet_env, models, label_dataset, tmp_path):
    for trainer in ("nnUNetTrainerModalityDropout_12iters", "nnUNetTrainerMTGTeacherBottleneck_12iters"):
        fold = models.fold(label_dataset, trainer)
        ckpt = checkpoint(fold)
        # label training: background + 3 labels as softmax outputs
        head = [v for k, v in ckpt["network_weights"].items() if k.startswith("decoder.seg_layers.2.weight")][0]
        assert head.shape[0] == 4
        assert any(k.startswith("align.") for k in ckpt["network_weights"]) == ("MTG" in trainer)
    # labels edema/necrosis/enhancing: WT, TC, ET as every BraTS paper reports them, the labels beside them
    run_cli(["nnUNetv2_mtg_evaluate", "-d", str(label_dataset["id"]), "-c", "3d_fullres", "-p", "nnUNetPlans_cpu_tiny",
             "-tr", "nnUNetTrainerMTGTeacherBottleneck_12iters", "-f", "0", "-device", "cpu", "--subsets", "full",
             "-i", os.path.join(label_dataset["raw"], "imagesTs"), "-l", os.path.join(label_dataset["raw"], "labelsTs"),
             "-o", str(tmp_path)], nnunet_env)
    md = (tmp_path / "nnUNetTrainerMTGTeacherBottleneck_12iters" / "summary.md").read_text()
    assert "| subset | Dice WT | Dice TC | Dice ET | Dice label edema | Dice label necrosis | Dice label enhancing |" in md


def test_unmappable_channels_fail_before_any_output(nnunet_env, label_dataset, tmp_path):
    """A dataset whose channels cannot be mapped: the error lists them, nnUNet_results gets nothing."""
    import json

    name = "Dataset952_Unmapped"
    raw = os.path.join(nnunet_env["nnUNet_raw"], name)
    pre = os.path.join(nnunet_env["nnUNet_preprocessed"], name)
    shutil.copytree(label_dataset["raw"], raw)
    shutil.copytree(os.path.join(nnunet_env["nnUNet_preprocessed"], label_dataset["name"]), pre)
    for path in (os.path.join(raw, "dataset.json"), os.path.join(pre, "dataset.json")):
        dj = json.load(open(path))
        dj["channel_names"] = {"0": "T1", "1": "ADC", "2": "T2", "3": "PD"}
        json.dump(dj, open(path, "w"))
    proc = run_cli(["nnUNetv2_train", "952", "3d_fullres", "0", "-tr", "nnUNetTrainerMTGTeacherBottleneck_smoke",
                    "-p", "nnUNetPlans_cpu_tiny", "-device", "cpu"], nnunet_env, check=False)
    assert proc.returncode != 0
    assert '"1": "ADC"' in proc.stderr and "mtg_modalities" in proc.stderr
    assert not os.path.exists(os.path.join(nnunet_env["nnUNet_results"], name))
