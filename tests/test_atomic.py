"""Outputs are written completely or not at all: a failed write keeps the previous file and leaves no temporary."""
import os

import numpy as np
import pytest

from nnunetv2_mtg.atomic import atomic_path, write_json


def test_a_failed_write_keeps_the_previous_file_and_leaves_nothing_else(tmp_path):
    path = tmp_path / "record.json"
    write_json(str(path), {"cases": 1})
    with pytest.raises(RuntimeError):
        with atomic_path(str(path)) as tmp, open(tmp, "w") as f:
            f.write('{"cases": ')
            raise RuntimeError("interrupted half way")
    assert path.read_text() == '{\n "cases": 1\n}'
    assert os.listdir(tmp_path) == ["record.json"]


def test_the_temporary_ends_like_the_target_so_format_picking_writers_keep_the_name(tmp_path):
    path = tmp_path / "reference.npy"
    with atomic_path(str(path)) as tmp:
        np.save(tmp, np.arange(3))  # np.save appends .npy to a name that does not end in it
    assert os.listdir(tmp_path) == ["reference.npy"] and np.load(path).tolist() == [0, 1, 2]
