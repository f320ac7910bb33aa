"""Plans presets: the cpu_tiny plans, the original left alone, and every bad input."""
import hashlib
import json
import os

import pytest

from conftest import run_cli
from nnunetv2_mtg.env import UserInputError
from nnunetv2_mtg.plans_presets import apply_preset, available_presets, load_preset


def _plans(env, phantom, name):
    with open(os.path.join(env["nnUNet_preprocessed"], phantom["name"], name + ".json")) as f:
        return json.load(f)


def test_cpu_tiny_applied(nnunet_env, phantom):
    stock = _plans(nnunet_env, phantom, "nnUNetPlans")
    tiny = _plans(nnunet_env, phantom, "nnUNetPlans_cpu_tiny")
    assert tiny["plans_name"] == "nnUNetPlans_cpu_tiny"
    cfg, stock_cfg = tiny["configurations"]["3d_fullres"], stock["configurations"]["3d_fullres"]
    arch = cfg["architecture"]["arch_kwargs"]
    assert cfg["data_identifier"] == stock_cfg["data_identifier"]  # same preprocessed data
    assert arch["n_stages"] == 4 and arch["features_per_stage"] == [8, 16, 32, 64]
    assert max(cfg["patch_size"]) <= 48 and cfg["batch_size"] == 2
    assert "n_blocks_per_stage" not in arch  # PlainConvUNet does not take it
    assert cfg["architecture"]["network_class_name"] == stock_cfg["architecture"]["network_class_name"]


def test_resenc_plans_get_blocks_not_convs(nnunet_env, phantom):
    run_cli(["nnUNetv2_plan_experiment", "-d", str(phantom["id"]), "-pl", "nnUNetPlannerResEncM"], nnunet_env)
    run_cli(["nnUNetv2_mtg_plans", "-d", str(phantom["id"]), "-p", "nnUNetResEncUNetMPlans",
             "--preset", "cpu_tiny"], nnunet_env)
    arch = _plans(nnunet_env, phantom, "nnUNetResEncUNetMPlans_cpu_tiny")["configurations"]["3d_fullres"][
        "architecture"]["arch_kwargs"]
    assert arch["n_blocks_per_stage"] == [1, 1, 1, 1] and "n_conv_per_stage" not in arch


def test_bad_input(nnunet_env, phantom):
    source = os.path.join(nnunet_env["nnUNet_preprocessed"], phantom["name"], "nnUNetPlans.json")
    before = hashlib.sha256(open(source, "rb").read()).hexdigest()

    p = run_cli(["nnUNetv2_mtg_plans", "-d", str(phantom["id"]), "--preset", "nope"], nnunet_env, check=False)
    assert p.returncode != 0 and "unknown preset 'nope'" in p.stderr and "cpu_tiny" in p.stderr

    p = run_cli(["nnUNetv2_mtg_plans", "-d", str(phantom["id"]), "-p", "missingPlans", "--preset", "cpu_tiny"],
                nnunet_env, check=False)
    assert p.returncode != 0 and "missingPlans.json does not exist" in p.stderr
    assert "nnUNetv2_plan_and_preprocess" in p.stderr

    env = {k: v for k, v in nnunet_env.items() if k != "nnUNet_preprocessed"}
    p = run_cli(["nnUNetv2_mtg_plans", "-d", str(phantom["id"]), "--preset", "cpu_tiny"], env, check=False)
    assert p.returncode != 0 and "nnUNet_preprocessed is not set" in p.stderr

    plans = json.load(open(source))
    bad_patch = {"configurations": {"3d_fullres": {"patch_size": [44, 48, 48]}}}
    tiny = load_preset("cpu_tiny")
    with pytest.raises(UserInputError, match="not divisible by the total stride"):
        apply_preset(plans, {"configurations": {"3d_fullres": {
            **tiny["configurations"]["3d_fullres"], **bad_patch["configurations"]["3d_fullres"]}}}, "bad")
    with pytest.raises(UserInputError, match="features_per_stage has 3 entries, n_stages=4 needs 4"):
        apply_preset(plans, {"configurations": {"3d_fullres": {"architecture": {"arch_kwargs": {
            "features_per_stage": [8, 16, 32]}}}}}, "bad")
    without_2d = dict(plans, configurations={k: v for k, v in plans["configurations"].items() if k != "2d"})
    with pytest.raises(UserInputError, match="configuration '2d', which these plans do not have"):
        apply_preset(without_2d, {"configurations": {"2d": {"batch_size": 4}}}, "bad")
    assert hashlib.sha256(open(source, "rb").read()).hexdigest() == before
    assert available_presets() == sorted(available_presets()) and "cpu_tiny" in available_presets()
