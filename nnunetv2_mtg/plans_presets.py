"""Plans presets: apply a JSON overlay from `plans/` to an nnU-Net plans file under a new name.

The new plans file keeps every configuration's `data_identifier`, so it reuses the data that
`nnUNetv2_plan_and_preprocess` already wrote; only the network and patch/batch change. One preset
serves PlainConvUNet and ResidualEncoderUNet plans: architecture keys the plans' network does not
take (`n_conv_per_stage` vs `n_blocks_per_stage`) are left out.
"""
from __future__ import annotations

import argparse
import copy
import json
import os
import sys

import numpy as np

from nnunetv2_mtg.atomic import write_json
from nnunetv2_mtg.env import UserInputError, require_env_folder


def presets_folder() -> str:
    """Folder of the shipped presets (the `plans/` package; repo folder in an editable install)."""
    import nnunetv2_mtg.plans

    return os.path.dirname(os.path.abspath(nnunetv2_mtg.plans.__file__))


def available_presets() -> list[str]:
    return sorted(f[:-5] for f in os.listdir(presets_folder()) if f.endswith(".json"))


def load_preset(name: str) -> dict:
    path = os.path.join(presets_folder(), name + ".json")
    if not os.path.isfile(path):
        raise UserInputError(f"unknown preset '{name}'. Available presets: {', '.join(available_presets())}")
    with open(path) as f:
        return json.load(f)


def _merge(base: dict, overlay: dict) -> dict:
    out = copy.deepcopy(base)
    for k, v in overlay.items():
        out[k] = _merge(out[k], v) if isinstance(v, dict) and isinstance(out.get(k), dict) else copy.deepcopy(v)
    return out


def validate_configuration(name: str, cfg: dict) -> None:
    """Raise UserInputError if the configuration cannot build a network that fits its patch size."""
    arch = cfg.get("architecture", {}).get("arch_kwargs", {})
    problems = []
    n = arch.get("n_stages")
    patch = cfg.get("patch_size")
    if not isinstance(n, int) or n < 2:
        problems.append(f"n_stages must be an integer >= 2, got {n!r}")
    else:
        for key, want in (("features_per_stage", n), ("kernel_sizes", n), ("strides", n), ("n_conv_per_stage", n),
                          ("n_blocks_per_stage", n), ("n_conv_per_stage_decoder", n - 1)):
            if key in arch and (not isinstance(arch[key], (list, tuple)) or len(arch[key]) != want):
                problems.append(f"{key} has {len(arch[key]) if isinstance(arch[key], (list, tuple)) else arch[key]!r}"
                                f" entries, n_stages={n} needs {want}")
    if not problems and patch is not None:
        strides = np.array([s if isinstance(s, (list, tuple)) else [s] * len(patch) for s in arch["strides"]])
        if strides.shape[1] != len(patch):
            problems.append(f"strides are {strides.shape[1]}-D but patch_size {patch} is {len(patch)}-D")
        else:
            total = np.prod(strides, axis=0)
            if any(p % t for p, t in zip(patch, total)):
                problems.append(f"patch_size {patch} is not divisible by the total stride {total.tolist()}")
            if any(p // t < 1 for p, t in zip(patch, total)):
                problems.append(f"patch_size {patch} is smaller than the total stride {total.tolist()}")
    if "batch_size" in cfg and (not isinstance(cfg["batch_size"], int) or cfg["batch_size"] < 1):
        problems.append(f"batch_size must be a positive integer, got {cfg['batch_size']!r}")
    if problems:
        raise UserInputError(f"configuration '{name}' would be an invalid network: " + "; ".join(problems))


def apply_preset(plans: dict, preset: dict, preset_name: str) -> dict:
    """Return a new plans dict: `preset` merged into `plans`, renamed `<plans_name>_<preset_name>`."""
    out = copy.deepcopy(plans)
    out["plans_name"] = f"{plans['plans_name']}_{preset_name}"
    for cfg_name, overlay in preset.get("configurations", {}).items():
        if cfg_name not in out["configurations"]:
            raise UserInputError(f"preset '{preset_name}' changes configuration '{cfg_name}', which these plans do "
                                 f"not have (they have {sorted(out['configurations'])}). Run "
                                 f"nnUNetv2_plan_and_preprocess -c {cfg_name} first.")
        overlay = copy.deepcopy(overlay)
        original = out["configurations"][cfg_name]
        known = original.get("architecture", {}).get("arch_kwargs", {})
        arch_overlay = overlay.get("architecture", {}).get("arch_kwargs")
        if arch_overlay is not None:
            for key in [k for k in arch_overlay if k not in known]:
                del arch_overlay[key]
        merged = _merge(original, overlay)
        validate_configuration(cfg_name, merged)
        out["configurations"][cfg_name] = merged
    return out


def require_preprocessed(plans: dict, folder: str, preset: dict, dataset: str | int) -> None:
    """UserInputError unless every configuration the preset changes has its preprocessed data in `folder`: a
    plans file lists 2d and 3d_fullres whatever `-c` preprocessed, and training on a missing folder fails late."""
    for cfg_name in preset.get("configurations", {}):
        data = plans["configurations"][cfg_name].get("data_identifier")
        if data is not None and not os.path.isdir(os.path.join(folder, data)):
            raise UserInputError(f"configuration '{cfg_name}' of {plans['plans_name']} has no preprocessed data "
                                 f"({os.path.join(folder, data)} does not exist). Run nnUNetv2_plan_and_preprocess "
                                 f"-d {dataset} -c {cfg_name} first.")


def write_preset_plans(dataset: str | int, preset_name: str, plans_identifier: str = "nnUNetPlans") -> str:
    """Write `<plans_identifier>_<preset_name>.json` next to the plans file; returns its path.

    The source plans file is only read. An existing output file is replaced atomically.
    """
    from nnunetv2.utilities.dataset_name_id_conversion import maybe_convert_to_dataset_name

    preproc = require_env_folder("nnUNet_preprocessed")
    preset = load_preset(preset_name)
    try:
        dataset_name = maybe_convert_to_dataset_name(dataset)
    except RuntimeError as e:
        raise UserInputError(f"{e}. Run nnUNetv2_plan_and_preprocess -d {dataset} first.") from None
    source = os.path.join(preproc, dataset_name, plans_identifier + ".json")
    if not os.path.isfile(source):
        raise UserInputError(f"plans file {source} does not exist. Run "
                             f"nnUNetv2_plan_and_preprocess -d {dataset} first (or pass the right -p).")
    with open(source) as f:
        plans = json.load(f)
    new = apply_preset(plans, preset, preset_name)
    require_preprocessed(new, os.path.dirname(source), preset, dataset)
    target = os.path.join(preproc, dataset_name, new["plans_name"] + ".json")
    write_json(target, new, indent=4)
    return target


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description="Apply a plans preset: writes <plans>_<preset>.json that reuses the "
                                            "same preprocessed data, e.g. -p nnUNetPlans_cpu_tiny for training.")
    p.add_argument("-d", required=True, help="dataset ID or name")
    p.add_argument("-p", default="nnUNetPlans", help="source plans identifier (default nnUNetPlans)")
    p.add_argument("--preset", required=True, help="preset name; available: " + ", ".join(available_presets()))
    a = p.parse_args(argv)
    try:
        path = write_preset_plans(a.d, a.preset, a.p)
    except UserInputError as e:
        sys.exit(f"nnUNetv2_mtg_plans: error: {e}")
    print(f"wrote {path}\ntrain with: -p {os.path.basename(path)[:-5]}")


if __name__ == "__main__":
    main()
