"""nnU-Net's folder variables, checked with errors that say how to fix them."""
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
