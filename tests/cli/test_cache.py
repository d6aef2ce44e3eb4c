"""``anymodal cache build|info``: fill a recipe's sample cache and report its hit rate."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from anymodal.cli.main import main

ROWS = 6


def _recipe(tmp_path: Path, dim: int = 4, cache: bool = True) -> Path:
    for i in range(ROWS):
        for key in "ab":
            np.save(tmp_path / f"{key}{i}.npy", np.full(dim, i, dtype=np.float32))
    lines = [json.dumps({"id": str(i), "a": f"a{i}.npy", "b": f"b{i}.npy"}) for i in range(ROWS)]
    (tmp_path / "train.jsonl").write_text("\n".join(lines) + "\n")
    cache_line = (f"  cache: {{dir: {tmp_path / 'cache'}, modalities: [a]}}\n" if cache
                  else "")
    recipe = tmp_path / "recipe.yaml"
    recipe.write_text(
        "modalities:\n"
        f"  a: {{modality: vector, options: {{dim: {dim}}}}}\n"
        f"  b: {{modality: vector, options: {{dim: {dim}}}}}\n"
        "data:\n"
        f"  train: {{kind: manifest, path: {tmp_path / 'train.jsonl'}}}\n" + cache_line)
    return recipe


def _json(capsys: pytest.CaptureFixture[str], argv: list[str]) -> Any:
    assert main(argv) == 0
    return json.loads(capsys.readouterr().out)


def test_build_then_info_reports_every_item_cached(tmp_path: Path,
                                                  capsys: pytest.CaptureFixture[str]) -> None:
    recipe = _recipe(tmp_path)
    before = _json(capsys, ["cache", "info", str(recipe), "--json"])
    assert before["modalities"] == {"a": {"items": ROWS, "hits": 0, "entries": 0, "bytes": 0,
                                          "stale_entries": 0, "stale_bytes": 0}}
    built = _json(capsys, ["cache", "build", str(recipe), "--no-progress", "--workers", "2",
                           "--json"])
    assert built["build"] == {"rows": ROWS, "bad_rows": 0}
    a = built["modalities"]["a"]
    assert a["hits"] == a["entries"] == ROWS and a["bytes"] > 0
    assert "b" not in built["modalities"]  # only the modalities data.cache names


def test_info_sees_a_changed_file_and_a_changed_option(tmp_path: Path,
                                                       capsys: pytest.CaptureFixture[str]
                                                       ) -> None:
    recipe = _recipe(tmp_path)
    _json(capsys, ["cache", "build", str(recipe), "--no-progress", "--json"])
    changed = tmp_path / "a0.npy"
    np.save(changed, np.full(4, 9, dtype=np.float32))
    stat = changed.stat()
    os.utime(changed, ns=(stat.st_atime_ns, stat.st_mtime_ns + 1_000_000))
    info = _json(capsys, ["cache", "info", str(recipe), "--json"])["modalities"]["a"]
    assert info["hits"] == ROWS - 1 and info["entries"] == ROWS
    # another option: a new namespace, the old entries counted as stale, no hit
    other = _json(capsys, ["cache", "info", str(recipe), "modalities.a.options.noise=0.5",
                           "--json"])["modalities"]["a"]
    assert other["hits"] == 0 and other["entries"] == 0 and other["stale_entries"] == ROWS


def test_recipe_without_cache_is_refused(tmp_path: Path,
                                         capsys: pytest.CaptureFixture[str]) -> None:
    recipe = _recipe(tmp_path, cache=False)
    assert main(["cache", "info", str(recipe)]) != 0
    assert "the recipe has no data.cache" in capsys.readouterr().err
