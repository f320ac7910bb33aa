"""nnU-Net's folder variables, checked with errors that say how to fix them, and the commands those errors name."""
from __future__ import annotations

import os


class UserInputError(Exception):
    """Bad input from the user: the CLIs print it as one clear line, never a traceback."""


def require_env_folder(name: str, create: bool = False) -> str:
    """The folder in nnU-Net's environment variable `name` (nnUNet_raw, nnUNet_preprocessed, ...)."""
    value = os.environ.get(name)
    if not value:
        raise UserInputError(
            f"${name} is not set. nnU-Net needs it: run `export {name}=/path/to/{name}` "
            f"(see nnU-Net's documentation/setting_up_paths.md), then run this command again.")
    if not os.path.isdir(value):
        if not create:
            raise UserInputError(f"${name} points to {value}, which is not a folder. "
                                 f"Create it or fix the variable.")
        os.makedirs(value, exist_ok=True)
    return value


def train_command(dataset: str, configuration: str, fold, trainer: str, plans: str) -> str:
    """The stock nnUNetv2_train command an error tells the user to run (`dataset` a name like Dataset960_X or an
    id; written as the id)."""
    dataset_id = dataset[7:10] if dataset.startswith("Dataset") else dataset
    return f"nnUNetv2_train {dataset_id} {configuration} {fold} -tr {trainer} -p {plans}"
