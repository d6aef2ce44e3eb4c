"""Index files: header covered by its digest, non-finite rows refused, crash-safe replace."""

from __future__ import annotations

import json
import os
import stat
from pathlib import Path
from typing import Any

import pytest
import torch
from safetensors.torch import save_file

import anymodal
from anymodal.errors import ArtifactError
from anymodal.retrieval.index import Index
from anymodal.retrieval.storage import IndexFileError, header_digest
from anymodal.utils.checksums import sha256_file
from tests.fault_injection import every_kill_point, race

from .conftest import synth


def _index(n: int = 30, seed: int = 0) -> Index:
    x = torch.randn(n, 8, generator=torch.Generator().manual_seed(seed))
    return Index(x, [f"id{i}" for i in range(n)], modality="c", fingerprint="0123456789abcdef")


def _edit_header(path: Path, **changes: Any) -> None:
    header = json.loads((path / "index.json").read_text())
    header.update(changes)
    (path / "index.json").write_text(json.dumps(header))


def test_an_edited_header_field_is_refused(tmp_path: Path) -> None:
    # issue 14: index.json fields were not covered: fingerprint null bypassed the model check.
    _index().save(tmp_path / "x.index")
    _edit_header(tmp_path / "x.index", fingerprint=None)
    with pytest.raises(IndexFileError, match=r"index\.json.*do not match the header_sha256"):
        Index.load(tmp_path / "x.index")


@pytest.mark.parametrize("field, value", [("count", "30"), ("dim", None), ("modality", 3),
                                          ("checksums", []), ("fingerprint", 5)])
def test_a_header_field_of_the_wrong_type_names_it(tmp_path: Path, field: str, value: Any
                                                   ) -> None:
    # issue 14: such damage raised a raw TypeError/KeyError naming no file.
    _index().save(tmp_path / "x.index")
    _edit_header(tmp_path / "x.index", **{field: value})
    with pytest.raises(IndexFileError, match=rf"index\.json.*{field!r} is"):
        Index.load(tmp_path / "x.index")


def test_a_nan_row_on_disk_is_refused_at_load(tmp_path: Path) -> None:
    # issue 14: a NaN row in an index was returned as the top hit.
    path = tmp_path / "x.index"
    _index().save(path)
    rows = torch.randn(30, 8)
    rows[7, 2] = float("nan")
    save_file({"embeddings": rows}, str(path / "embeddings.safetensors"))
    header = json.loads((path / "index.json").read_text())  # a consistent, valid-looking file
    header["checksums"]["embeddings.safetensors"] = sha256_file(path / "embeddings.safetensors")
    header["header_sha256"] = header_digest(header)
    (path / "index.json").write_text(json.dumps(header))
    with pytest.raises(IndexFileError, match=r"not finite.*row 7 \(id 'id7'\)"):
        Index.load(path)


def test_a_non_finite_embedding_is_a_named_bad_item_at_build(make_model: Any) -> None:
    # issue 14: Index.build(on_error="skip") failed whole on one NaN item, naming none.
    model = make_model()
    items = synth(model, "c", 4, 0)
    items[2] = torch.full_like(items[2], 3e38)
    failures: list[tuple[int, str]] = []
    index = Index.build(model, "c", items, ids=list("abcd"), progress=False, on_error="skip",
                        failures=failures)
    assert index.ids == ["a", "b", "d"]
    assert [i for i, _ in failures] == [2] and "not finite" in failures[0][1]
    with pytest.raises(anymodal.DataError, match="item 2: its embedding is not finite"):
        Index.build(model, "c", items, progress=False)


def test_a_kill_at_any_rename_or_delete_of_a_save_leaves_a_loadable_index(tmp_path: Path
                                                                          ) -> None:
    # issue 14: a kill between the index writer's two renames left nothing at the path.
    path = tmp_path / "x.index"
    _index(30).save(path)
    points = 0
    for _ in every_kill_point(lambda: _index(40, seed=1).save(path)):
        points += 1
        assert len(Index.load(path)) in (30, 40)
        assert [p.name for p in tmp_path.iterdir()] == ["x.index"]
    assert points >= 3 and len(Index.load(path)) == 40


def test_two_processes_saving_at_once_then_saving_again(tmp_path: Path) -> None:
    # issue 14: after one raced Index.save every later save failed with "Directory not empty".
    path = tmp_path / "x.index"

    def saves(n: int) -> None:
        for _ in range(15):
            _index(n).save(path)

    race([lambda: saves(30), lambda: saves(40)])
    assert len(Index.load(path)) in (30, 40)
    _index(50).save(path)
    assert len(Index.load(path)) == 50
    assert [p.name for p in tmp_path.iterdir()] == ["x.index"]


@pytest.mark.parametrize("mask", [0o022, 0o077])
def test_an_index_gets_the_umask_permissions(tmp_path: Path, mask: int) -> None:
    # issue 20 item 6: indexes were drwx------ whatever the umask.
    old = os.umask(mask)
    try:
        _index().save(tmp_path / "x.index")
    finally:
        os.umask(old)
    assert stat.S_IMODE((tmp_path / "x.index").stat().st_mode) == 0o777 & ~mask
    for child in (tmp_path / "x.index").iterdir():
        assert stat.S_IMODE(child.stat().st_mode) == 0o666 & ~mask


def test_index_file_errors_are_artifact_and_data_errors(tmp_path: Path) -> None:
    with pytest.raises(ArtifactError) as info:
        Index.load(tmp_path / "missing.index")
    assert isinstance(info.value, anymodal.DataError)
