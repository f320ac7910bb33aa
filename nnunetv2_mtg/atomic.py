"""Outputs written completely or not at all: each file is written beside its target under a temporary name and moved
over it in one step, so an interrupted or failed write leaves the previous file (or none), never half of one."""
from __future__ import annotations

import json
import os
from contextlib import contextmanager
from typing import Any, Iterator


@contextmanager
def atomic_path(path: str) -> Iterator[str]:
    """A temporary path beside `path`, ending like it (writers that choose the format by the ending, np.save and
    savefig, see the right one); moved over `path` when the block ends, removed when it raises."""
    tmp = f"{path}.tmp{os.path.splitext(path)[1]}"
    try:
        yield tmp
    except BaseException:
        if os.path.exists(tmp):
            os.remove(tmp)
        raise
    os.replace(tmp, path)


def write_text(path: str, text: str) -> None:
    with atomic_path(path) as tmp, open(tmp, "w") as f:
        f.write(text)


def write_json(path: str, obj: Any, indent: int = 1) -> None:
    with atomic_path(path) as tmp, open(tmp, "w") as f:
        json.dump(obj, f, indent=indent)
