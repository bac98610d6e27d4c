"""outputs.py: an output is replaced only by a complete file, never over an input, and write errors name the file."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from plancheck.sinks.files import OutputError, check_outputs, replacing


def test_an_interrupted_write_leaves_the_old_file_and_no_temporary(tmp_path):
    target = tmp_path / "out.jsonl"
    target.write_text("old\n")
    with pytest.raises(KeyboardInterrupt):
        with replacing(target) as stream:
            stream.write(b"half a new fi")
            raise KeyboardInterrupt
    assert target.read_text() == "old\n" and os.listdir(tmp_path) == ["out.jsonl"]


def test_a_completed_write_replaces_the_file_keeping_its_mode(tmp_path):
    target = tmp_path / "out.jsonl"
    target.write_text("old\n")
    target.chmod(0o640)
    with replacing(target) as stream:
        stream.write(b"new\n")
    assert target.read_text() == "new\n" and target.stat().st_mode & 0o777 == 0o640
    assert os.listdir(tmp_path) == ["out.jsonl"]


def test_a_symlinked_output_is_refused_and_neither_the_link_nor_its_target_changes(tmp_path):
    """An output planted as a link (to someone's file) is never written through (issue 19)."""
    real, link = tmp_path / "real.jsonl", tmp_path / "link.jsonl"
    real.write_text("old\n")
    link.symlink_to(real)
    with pytest.raises(OutputError, match="is a symbolic link"):
        check_outputs({"--out": link}, [])
    with pytest.raises(OutputError, match="is a symbolic link"), replacing(link) as stream:
        stream.write(b"new\n")
    assert link.is_symlink() and real.read_text() == "old\n"


def test_an_output_that_is_an_input_through_a_symlink_is_refused(tmp_path):
    feed = tmp_path / "feed.csv"
    feed.write_text("x\n")
    (tmp_path / "alias").symlink_to(feed)
    with pytest.raises(OutputError, match="is an input of this run"):
        check_outputs({"--out": tmp_path / "alias"}, [feed])


def test_a_device_is_written_in_place_and_a_full_one_names_itself():
    with pytest.raises(OutputError, match="/dev/full: cannot write: No space left on device"):
        with replacing(Path("/dev/full")) as stream:
            stream.write(b"x" * 100_000)
