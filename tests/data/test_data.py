"""Data: manifests (JSONL and CSV), synthetic rows, collation with presence masks."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

import anymodal
from anymodal.data.collate import BadRow, collate_rows
from anymodal.data.manifest import ManifestDataset, read_manifest_rows
from anymodal.data.synthetic import SyntheticDataset
from anymodal.errors import DataError


@pytest.fixture
def vectors() -> dict[str, anymodal.ModalitySpec]:
    return {"a": anymodal.get_modality("vector", dim=4, view_seed=1),
            "b": anymodal.get_modality("vector", dim=4, view_seed=2)}


def test_csv_manifest_paths_relative_and_missing_cells(tmp_path: Path, vectors: dict) -> None:
    np.save(tmp_path / "x.npy", np.arange(4, dtype=np.float32))
    (tmp_path / "m.csv").write_text("id,a,b,label\nr0,x.npy,,2\nr1,x.npy,\"1,2,3,4\",0\n")
    data = ManifestDataset(tmp_path / "m.csv", vectors, train=False)
    first, second = data[0], data[1]
    assert set(first["items"]) == {"a"} and first["label"] == 2
    torch.testing.assert_close(second["items"]["b"], torch.tensor([1.0, 2, 3, 4]))
    batch = collate_rows([first, second], vectors)
    assert batch["present"]["b"].tolist() == [False, True]
    assert batch["b"].shape == (1, 4) and batch["a"].shape == (2, 4)
    assert batch["labels"].tolist() == [2, 0]


def test_manifest_errors_name_the_file_and_line(tmp_path: Path, vectors: dict) -> None:
    bad = tmp_path / "m.jsonl"
    bad.write_text('{"id": "a"}\n{not json}\n')
    with pytest.raises(DataError, match=r"m.jsonl:2: not valid JSON"):
        read_manifest_rows(bad)
    (tmp_path / "m.txt").write_text("x")
    with pytest.raises(DataError, match="unknown manifest format"):
        read_manifest_rows(tmp_path / "m.txt")
    other = tmp_path / "o.jsonl"
    other.write_text(json.dumps({"id": 1, "audio": "x.wav"}) + "\n")
    with pytest.raises(DataError, match=r"no column matches the recipe's modalities \['a', 'b'\]"):
        ManifestDataset(other, vectors)


def test_a_bad_row_becomes_a_badrow_or_raises(tmp_path: Path, vectors: dict) -> None:
    (tmp_path / "m.jsonl").write_text(json.dumps({"id": "z", "a": "gone.npy"}) + "\n")
    skipped = ManifestDataset(tmp_path / "m.jsonl", vectors, on_error="skip")[0]
    assert isinstance(skipped, BadRow) and "gone.npy" in skipped.source
    with pytest.raises(DataError, match=r"gone.npy: file not found .*row 0, id 'z'"):
        ManifestDataset(tmp_path / "m.jsonl", vectors, on_error="raise")[0]


def test_synthetic_rows_are_deterministic_and_share_labels(vectors: dict) -> None:
    data = SyntheticDataset(vectors, 32, seed=5, missing={"b": 0.5})
    again = SyntheticDataset(vectors, 32, seed=5, missing={"b": 0.5})
    for i in (0, 7, 31):
        assert data[i]["label"] == again[i]["label"]
        for key, item in data[i]["items"].items():
            assert torch.equal(item, again[i]["items"][key])
    present = [("b" in data[i]["items"]) for i in range(32)]
    assert 4 < sum(present) < 28
    assert all(data[i]["items"] for i in range(32))
    with pytest.raises(IndexError):
        data[32]


def _write_shards(tmp_path: Path, rows: int = 24, per_shard: int = 8) -> str:
    import io

    import webdataset as wds

    rng = np.random.default_rng(0)
    for shard in range(rows // per_shard):
        with wds.TarWriter(str(tmp_path / f"shard-{shard:03d}.tar")) as sink:
            for i in range(shard * per_shard, (shard + 1) * per_shard):
                sample = {"__key__": f"s{i:04d}", "label.cls": str(i % 3).encode()}
                for key in ("a", "b"):
                    buffer = io.BytesIO()
                    np.save(buffer, rng.normal(size=4).astype(np.float32))
                    sample[f"{key}.npy"] = buffer.getvalue()
                if i == 5:
                    sample["b.npy"] = b"garbage"
                sink.write(sample)
    return str(tmp_path / "shard-{000..002}.tar")


def test_webdataset_shards_stream_rows_and_bad_samples(tmp_path: Path, vectors: dict) -> None:
    from anymodal.data.shards import ShardDataset

    rows = list(ShardDataset(_write_shards(tmp_path), vectors, train=False))
    assert len(rows) == 24
    bad = [r for r in rows if isinstance(r, BadRow)]
    assert [b.id for b in bad] == ["s0005"] and "no .npy header" in bad[0].reason
    good = [r for r in rows if not isinstance(r, BadRow)]
    assert good[0]["label"] == 0 and good[0]["items"]["a"].shape == (4,)


def test_training_streams_from_shards(tmp_path: Path) -> None:
    from anymodal.config import load_config
    from anymodal.training import train
    from tests.conftest import vector_overrides

    pattern = _write_shards(tmp_path, rows=48)
    overrides = [o for o in vector_overrides(tmp_path) if "view_seed" not in o]
    config = load_config(None, [*overrides, "modalities.a.options.dim=4",
                                "modalities.b.options.dim=4", "modalities.a.params.in_dim=4",
                                "modalities.b.params.in_dim=4", "data.train.kind=webdataset",
                                f"data.train.path={pattern}", "data.val=null",
                                "train.max_steps=8"])
    result = train(config)
    assert result.step == 8  # 48 rows / 8 = 6 batches per pass: the stream is read twice
    assert (tmp_path / "run" / "bad_samples.jsonl").read_text().count("s0005") >= 1
