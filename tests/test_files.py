"""Atomic writes and early output-path checks of ``horq_keras.files``."""

import os

import pytest
from horq_keras.files import (
    atomic_open,
    atomic_write_bytes,
    atomic_write_text,
    check_writable,
)


def test_atomic_write_replaces_the_file_with_normal_permissions(tmp_path):
    path = tmp_path / "model.tflite"
    path.write_bytes(b"old")
    assert atomic_write_bytes(path, b"new model") == str(path)
    assert path.read_bytes() == b"new model"
    atomic_write_text(path, "text ✓")
    assert path.read_text(encoding="utf-8") == "text ✓"
    mask = os.umask(0)
    os.umask(mask)
    assert os.stat(path).st_mode & 0o777 == 0o666 & ~mask  # not mkstemp's 0600
    assert os.listdir(tmp_path) == ["model.tflite"]


def test_failed_write_keeps_the_old_file_and_leaves_nothing(tmp_path):
    path = tmp_path / "model.tflite"
    path.write_bytes(b"old")
    with pytest.raises(TypeError):
        atomic_write_bytes(path, object())  # not bytes-like: fails while writing
    assert path.read_bytes() == b"old"
    assert os.listdir(tmp_path) == ["model.tflite"]


def test_check_writable_names_the_argument(tmp_path):
    assert check_writable(tmp_path / "ok.json", "--report") == str(tmp_path / "ok.json")
    assert os.listdir(tmp_path) == []  # the probe file is gone
    with pytest.raises(ValueError, match="`--report` must be a file path; got an empty"):
        check_writable("", "--report")
    with pytest.raises(ValueError, match="`--report` must be a file path; .* is a directory"):
        check_writable(tmp_path, "--report")
    with pytest.raises(FileNotFoundError, match="`--report`: the directory .* does not exist"):
        check_writable(tmp_path / "no" / "r.json", "--report")
    (tmp_path / "plain").write_text("x")
    with pytest.raises(NotADirectoryError, match="`--report`: .* is not a directory"):
        check_writable(tmp_path / "plain" / "r.json", "--report")
    with pytest.raises(PermissionError, match="`--report`: cannot write in the directory"):
        check_writable("/sys/r.json", "--report")  # read-only even for root


def test_atomic_open_keeps_the_old_file_when_the_block_fails(tmp_path):
    target = tmp_path / "result.md"
    target.write_text("old")
    with pytest.raises(RuntimeError), atomic_open(target) as file:
        file.write("half")
        raise RuntimeError("interrupted")
    assert target.read_text() == "old"
    assert [p.name for p in tmp_path.iterdir()] == ["result.md"]
    with atomic_open(target, "wb") as file:
        file.write(b"new")
    assert target.read_bytes() == b"new"
    with pytest.raises(ValueError, match="`mode`"), atomic_open(target, "a"):
        pass
