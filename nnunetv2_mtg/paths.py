"""`nnUNetv2_mtg_paths`: where the trainers and plans presets of this installation live."""
from __future__ import annotations

import argparse
import os
import shlex


def trainers_folder() -> str:
    """The folder to put in nnUNet_extTrainer (repo `trainers/` or its installed copy)."""
    import nnunetv2_mtg.trainers

    return os.path.dirname(os.path.abspath(nnunetv2_mtg.trainers.__file__))


def main(argv: list[str] | None = None) -> None:
    from nnunetv2_mtg.plans_presets import presets_folder

    p = argparse.ArgumentParser(description="Print the folders nnU-Net needs to find nnunetv2-mtg.")
    p.add_argument("what", nargs="?", choices=["trainers", "plans"],
                   help="trainers: the value for nnUNet_extTrainer; plans: the presets folder")
    p.add_argument("--export", action="store_true",
                   help="print `export nnUNet_extTrainer=...` for eval, keeping other folders already in it")
    a = p.parse_args(argv)
    if a.export:
        folder = trainers_folder()
        current = [x for x in os.environ.get("nnUNet_extTrainer", "").split(os.pathsep) if x and x != folder]
        print("export nnUNet_extTrainer=" + shlex.quote(os.pathsep.join([folder] + current)))
    elif a.what == "trainers":
        print(trainers_folder())
    elif a.what == "plans":
        print(presets_folder())
    else:
        p.error("say `trainers`, `plans` or --export")


if __name__ == "__main__":
    main()
