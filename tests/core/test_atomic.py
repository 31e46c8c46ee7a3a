"""Atomic publishing: complete files or none, and folders built once by parallel writers."""

from __future__ import annotations

import json

import pytest
import torch

from afme_lib.core import atomic


def test_replacing_publishes_on_success_and_keeps_the_old_file_on_failure(tmp_path):
    target = tmp_path / "metrics.json"
    atomic.write_json(target, {"mrr": 0.5})
    assert json.loads(target.read_text()) == {"mrr": 0.5} and target.read_text().endswith("}\n")
    with pytest.raises(RuntimeError, match="disk full"):
        with atomic.replacing(target) as tmp:
            tmp.write_text('{"mrr": 0.')  # half written, then the writer dies
            raise RuntimeError("disk full")
    assert json.loads(target.read_text()) == {"mrr": 0.5}
    assert [p.name for p in tmp_path.iterdir()] == ["metrics.json"]  # no temporary left behind


def test_two_writers_use_two_temporaries(tmp_path):
    target = tmp_path / "x.txt"
    with atomic.replacing(target) as first, atomic.replacing(target) as second:
        assert first != second and first.parent == second.parent == tmp_path
        first.write_text("first")
        second.write_text("second")
    assert target.read_text() == "first"  # the last rename wins; each was a whole file


def test_save_round_trips_through_torch_load(tmp_path):
    atomic.save({"w": torch.arange(3)}, tmp_path / "c.pt")
    assert torch.equal(torch.load(tmp_path / "c.pt", weights_only=True)["w"], torch.arange(3))


def test_publish_folder_builds_once_and_replaces_a_half_written_folder(tmp_path):
    folder = tmp_path / "data" / "synth"
    calls = []

    def write(tmp):
        calls.append(tmp)
        (tmp / "rows.txt").write_text("1\n")
        (tmp / "stamp").write_text("v2")

    def complete(path):
        return (path / "stamp").is_file() and (path / "stamp").read_text() == "v2"

    assert atomic.publish_folder(folder, write, complete) == folder
    assert (folder / "rows.txt").read_text() == "1\n" and len(calls) == 1
    assert atomic.publish_folder(folder, write, complete) == folder and len(calls) == 1  # reused
    (folder / "stamp").write_text("v1")  # made by another version: replaced
    atomic.publish_folder(folder, write, complete)
    assert complete(folder) and len(calls) == 2
    assert sorted(p.name for p in folder.parent.iterdir()) == ["synth"]  # the temporary folder is gone


def test_publish_folder_keeps_the_copy_of_a_writer_that_finished_first(tmp_path):
    folder = tmp_path / "f"

    def write(tmp):  # while we write, a parallel writer publishes its own copy
        (tmp / "who").write_text("us")
        folder.mkdir()
        (folder / "who").write_text("them")

    assert atomic.publish_folder(folder, write, lambda p: (p / "who").is_file()) == folder
    assert (folder / "who").read_text() == "them"
    assert [p.name for p in tmp_path.iterdir()] == ["f"]
