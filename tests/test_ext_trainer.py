"""nnUNet_extTrainer from `nnUNetv2_mtg_paths` makes stock nnUNetv2_train find external trainers."""
import os
import re
import subprocess

from conftest import BIN, checkpoint
from nnunetv2_mtg.paths import trainers_folder


def test_paths_cli():
    out = subprocess.run([os.path.join(BIN, "nnUNetv2_mtg_paths"), "trainers"], capture_output=True, text=True)
    assert out.stdout.strip() == trainers_folder() and os.path.isdir(out.stdout.strip())
    plans = subprocess.run([os.path.join(BIN, "nnUNetv2_mtg_paths"), "plans"], capture_output=True, text=True)
    assert os.path.isfile(os.path.join(plans.stdout.strip(), "cpu_tiny.json"))
    export = subprocess.run(["bash", "-c", f"eval \"$({BIN}/nnUNetv2_mtg_paths --export)\"; echo $nnUNet_extTrainer"],
                            capture_output=True, text=True, env=dict(os.environ, nnUNet_extTrainer="/other"))
    assert export.stdout.strip() == f"{trainers_folder()}{os.pathsep}/other"


def test_stock_training_on_cpu_tiny(nnunet_env, phantom, stock_tiny):
    fold = os.path.join(nnunet_env["nnUNet_results"], phantom["name"],
                        "nnUNetTrainerTestTiny__nnUNetPlans_cpu_tiny__3d_fullres", "fold_0")
    ckpt = checkpoint(fold)
    assert ckpt["trainer_name"] == "nnUNetTrainerTestTiny"
    # the tiny network, not the stock one: first conv has 8 output channels
    first = [v for k, v in ckpt["network_weights"].items() if k.endswith("conv.weight")][0]
    assert first.shape[0] == 8
    log = open([os.path.join(fold, f) for f in os.listdir(fold) if f.startswith("training_log")][0]).read()
    losses = [float(x) for x in re.findall(r"train_loss (-?[\d.]+)", log)]
    assert len(losses) == 2 and losses[1] < losses[0]  # it trained: the loss fell over its 20 iterations
    assert os.path.isfile(os.path.join(fold, "validation", "summary.json"))


def test_demo_schedule_trains_one_epoch_and_validates_without_mirroring(phantom, start_trainer):
    """`make demo`'s `_demo` variants: one epoch, mirroring kept as augmentation, none in the final validation."""
    stock = start_trainer(phantom, "nnUNetTrainerMTGTeacher_1epoch")
    demo = start_trainer(phantom, "nnUNetTrainerMTGTeacher_demo")
    assert demo.num_epochs == stock.num_epochs == 1
    mirror_axes = stock.configure_rotation_dummyDA_mirroring_and_inital_patch_size()[-1]
    assert tuple(stock.inference_allowed_mirroring_axes) == tuple(mirror_axes) == (0, 1, 2)
    assert tuple(demo.configure_rotation_dummyDA_mirroring_and_inital_patch_size()[-1]) == (0, 1, 2)
    assert demo.inference_allowed_mirroring_axes is None
