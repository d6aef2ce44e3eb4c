"""Manifest inputs confined and bounded: the bad-row corpus of issue 14.

Every kind of bad row is a counted :class:`BadRow` under ``on_error: skip`` and a
:class:`DataError` naming the row under ``raise``; none kills a run, none is read silently.
"""

from __future__ import annotations

import dataclasses
import json
import os
import time
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch

import anymodal
from anymodal.data.collate import BadRow
from anymodal.data.manifest import ManifestDataset
from anymodal.errors import DataError
from anymodal.types import ModalitySpec


def _vector() -> ModalitySpec:
    return anymodal.get_modality("vector", dim=3)


def _write(folder: Path, rows: list[dict[str, Any]], name: str = "m.jsonl") -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / name
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


def _npy(path: Path, values: list[float]) -> str:
    path.parent.mkdir(parents=True, exist_ok=True)
    np.save(path, np.asarray(values, dtype=np.float32))
    return str(path)


def _bad(tmp_path: Path, rows: list[dict[str, Any]], modalities: dict[str, ModalitySpec]
         | None = None, **kwargs: Any) -> BadRow:
    manifest = _write(tmp_path / "set", rows)
    mods = modalities or {"v": _vector()}
    row = ManifestDataset(manifest, mods, on_error="skip", **kwargs)[0]
    assert isinstance(row, BadRow), row
    with pytest.raises(DataError):
        ManifestDataset(manifest, mods, on_error="raise", **kwargs)[0]
    return row


def test_a_relative_path_that_leaves_the_folder_is_a_bad_row(tmp_path: Path) -> None:
    # issue 14: ../ paths were read anywhere.
    _npy(tmp_path / "outside.npy", [1, 2, 3])
    row = _bad(tmp_path, [{"v": "../outside.npy"}])
    assert "points outside" in row.reason


def test_an_absolute_path_outside_is_a_bad_row_unless_the_root_allows_it(tmp_path: Path
                                                                         ) -> None:
    # issue 14: absolute paths were read anywhere.
    target = _npy(tmp_path / "shared" / "x.npy", [1, 2, 3])
    row = _bad(tmp_path, [{"v": target}])
    assert "points outside" in row.reason
    manifest = _write(tmp_path / "set", [{"v": target}, {"v": "../shared/x.npy"}])
    data = ManifestDataset(manifest, {"v": _vector()}, on_error="raise", root=tmp_path)
    assert torch.equal(data[0]["items"]["v"], torch.tensor([1.0, 2.0, 3.0]))
    assert torch.equal(data[1]["items"]["v"], torch.tensor([1.0, 2.0, 3.0]))


def test_a_symlink_out_of_the_folder_is_a_bad_row(tmp_path: Path) -> None:
    target = _npy(tmp_path / "secret.npy", [1, 2, 3])
    (tmp_path / "set").mkdir()
    os.symlink(target, tmp_path / "set" / "link.npy")
    assert "points outside" in _bad(tmp_path, [{"v": "link.npy"}]).reason


def test_a_path_inside_the_folder_is_read(tmp_path: Path) -> None:
    _npy(tmp_path / "set" / "sub" / "x.npy", [4, 5, 6])
    manifest = _write(tmp_path / "set", [{"v": "sub/x.npy"}])
    row = ManifestDataset(manifest, {"v": _vector()}, on_error="raise")[0]
    assert torch.equal(row["items"]["v"], torch.tensor([4.0, 5.0, 6.0]))


def _echo_modality() -> ModalitySpec:
    """A text-like modality: strings are content unless its rule says "path"."""
    def load(source: Any) -> str:
        return str(source)

    load.source_is_path = lambda s: s.endswith(".txt")  # type: ignore[attr-defined]
    return ModalitySpec(name="echo", load=load, transform=lambda raw, train: raw,
                        collate=list, synthesize=lambda n, g, labels=None: [],
                        default_encoder="none")


def test_a_caption_equal_to_a_file_name_stays_the_caption(tmp_path: Path) -> None:
    # issue 14: it was silently replaced by that file's absolute path.
    folder = tmp_path / "set"
    folder.mkdir()
    (folder / "README").write_text("not the caption")
    manifest = _write(folder, [{"t": "README"}, {"t": "notes.txt"}])
    data = ManifestDataset(manifest, {"t": _echo_modality()}, on_error="raise")
    assert data[0]["items"]["t"] == "README"
    assert data[1]["items"]["t"] == str((folder / "notes.txt").resolve())  # a path, by rule


def test_a_string_naming_a_file_only_in_the_working_directory_is_refused(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    _npy(tmp_path / "cwd" / "x.npy", [1, 2, 3])
    monkeypatch.chdir(tmp_path / "cwd")
    assert "working directory" in _bad(tmp_path, [{"v": "x.npy"}]).reason


def test_a_fifo_is_a_bad_row_without_blocking(tmp_path: Path) -> None:
    # issue 14: a FIFO named x.wav blocked forever.
    (tmp_path / "set").mkdir()
    os.mkfifo(tmp_path / "set" / "x.npy")
    start = time.monotonic()
    assert "not a regular file" in _bad(tmp_path, [{"v": "x.npy"}]).reason
    assert time.monotonic() - start < 10


def test_a_load_that_hangs_is_a_bad_row_after_the_timeout(tmp_path: Path) -> None:
    # issue 14: a plugin whose load() hangs blocked forever.
    slow = dataclasses.replace(_vector(), load=lambda source: time.sleep(30))
    start = time.monotonic()
    row = _bad(tmp_path, [{"v": "1,2,3"}], {"v": slow}, load_timeout=0.3)
    assert "did not load within 0.3 s" in row.reason
    assert time.monotonic() - start < 10


def test_non_finite_values_after_the_transform_make_the_row_bad(tmp_path: Path) -> None:
    # issue 14: a float WAV of 1e30 gave an all-NaN fbank, silently.
    spec = _vector()
    blowup = dataclasses.replace(spec, transform=lambda raw, train: raw * 1e39)
    row = _bad(tmp_path, [{"v": "1,2,3"}], {"v": blowup})
    assert "NaN or infinite values after its transform" in row.reason


def test_a_file_name_over_255_bytes_is_a_bad_row(tmp_path: Path) -> None:
    # issue 14: it killed the run under on_error: skip.
    row = _bad(tmp_path, [{"v": "x" * 300 + ".npy"}])
    assert "v:" in row.reason


@pytest.mark.parametrize("label", ["three", "Infinity", 1e30, 3.7, True, "3.7", float("nan")])
def test_a_label_that_is_not_an_integer_is_a_bad_row(tmp_path: Path, label: Any) -> None:
    # issue 14: "three", Infinity, 1e30 killed the run; 3.7 and true became 3 and 1.
    row = _bad(tmp_path, [{"v": "1,2,3", "label": label}])
    assert "not an integer class label" in row.reason


@pytest.mark.parametrize("label, expected", [(3, 3), ("3", 3), (3.0, 3), (" -1 ", -1)])
def test_integer_labels_are_read(tmp_path: Path, label: Any, expected: int) -> None:
    manifest = _write(tmp_path / "set", [{"v": "1,2,3", "label": label}])
    assert ManifestDataset(manifest, {"v": _vector()}, on_error="raise")[0]["label"] == expected


def test_a_non_utf8_line_is_one_bad_row(tmp_path: Path) -> None:
    # issue 14: one non-UTF-8 byte in the manifest killed the run.
    folder = tmp_path / "set"
    folder.mkdir()
    (folder / "m.jsonl").write_bytes(b'{"v": "1,2,3"}\n{"v": "1,2,\xff"}\n{"v": "4,5,6"}\n')
    data = ManifestDataset(folder / "m.jsonl", {"v": _vector()}, on_error="skip")
    assert len(data) == 3 and data.bad_lines == [(2, "not valid UTF-8 (byte 0xff at column 12)")]
    assert isinstance(data[1], BadRow) and not isinstance(data[2], BadRow)
    with pytest.raises(DataError, match=r"m\.jsonl:2.*UTF-8"):
        ManifestDataset(folder / "m.jsonl", {"v": _vector()}, on_error="raise")


def test_a_non_utf8_csv_row_is_one_bad_row(tmp_path: Path) -> None:
    folder = tmp_path / "set"
    folder.mkdir()
    (folder / "m.csv").write_bytes(b'v,label\n"1,2,3",1\n"1,2,\xff",2\n')
    data = ManifestDataset(folder / "m.csv", {"v": _vector()}, on_error="skip")
    assert len(data) == 2 and isinstance(data[1], BadRow) and data[0]["label"] == 1


def _sleepy_load(source: Any) -> Any:
    time.sleep(30)


def test_the_load_timeout_works_inside_a_loader_worker(tmp_path: Path) -> None:
    from torch.utils.data import DataLoader

    slow = dataclasses.replace(_vector(), load=_sleepy_load)
    manifest = _write(tmp_path / "set", [{"v": "1,2,3"}])
    data = ManifestDataset(manifest, {"v": slow}, on_error="skip", load_timeout=0.3)
    start = time.monotonic()
    rows = list(DataLoader(data, batch_size=None, num_workers=1))
    assert isinstance(rows[0], BadRow) and "did not load within" in rows[0].reason
    assert time.monotonic() - start < 20
