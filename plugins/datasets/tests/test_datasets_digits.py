"""End-to-end tests of the ``digits`` builder: real files written by espeak-ng, ffmpeg,
Pillow, open3d and torch, read back by every modality's own loader."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch

import anymodal
from anymodal_datasets.digits import build as build_module
from anymodal_datasets.digits.build import MARKER
from anymodal_datasets.digits.words import NUMBER_WORDS

MODALITIES = ("image", "audio", "video", "pointcloud", "graph", "text")
FILE_MODALITIES = MODALITIES[:-1]
# Modality options shrunk as in recipes/digits_*.yaml.
LOADER_OPTIONS: dict[str, dict[str, Any]] = {
    "image": {"size": 32},
    "audio": {"sample_rate": 22050, "clip_seconds": 1.0, "n_mels": 64},
    "video": {"size": 32, "num_frames": 8, "short_side": 32},
    "pointcloud": {"num_points": 256},
    "graph": {"feature_dim": 3},
    "text": {"max_length": 48},
}


def read_jsonl(path: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]


def file_times(root: Path) -> dict[str, int]:
    """Modification time (ns) of every file under ``root``, by relative path."""
    return {str(p.relative_to(root)): p.stat().st_mtime_ns for p in root.rglob("*")
            if p.is_file()}


def copy_build(source: Path, target: Path) -> Path:
    shutil.copytree(source, target)  # copy2 keeps modification times
    return target


def build(out: Path, **params: Any) -> list[dict[str, Any]]:
    params.setdefault("workers", 1)
    params.setdefault("progress", False)
    return read_jsonl(anymodal.build_dataset_files("digits", out, **params))


def test_the_builder_is_registered() -> None:
    assert "digits" in anymodal.list_datasets()


@pytest.mark.slow
def test_every_file_opens_with_its_modality_loader(built: Path) -> None:
    rows = read_jsonl(built / "manifest.jsonl")
    assert len(rows) == 12
    from sklearn.datasets import load_digits

    assert [r["label"] for r in rows] == load_digits().target[:12].tolist()
    for modality in MODALITIES:
        spec = anymodal.get_modality(modality, **LOADER_OPTIONS[modality])
        items = []
        for row in rows:
            source = row[modality]
            if modality != "text":
                assert source == f"{modality}/{row['id']}.{Path(source).suffix[1:]}"
                source = str(built / source)  # relative to the manifest's folder
            items.append(spec.transform(spec.load(source), False))
        batch = spec.collate(items)
        if modality in ("image", "video", "pointcloud"):
            expected = {"image": (12, 3, 32, 32), "video": (12, 8, 3, 32, 32),
                        "pointcloud": (12, 256, 3)}[modality]
            assert tuple(batch.shape) == expected and torch.isfinite(batch).all()
        elif modality == "audio":
            assert batch["features"].shape[0] == 12 and batch["mask"].any(dim=1).all()
        elif modality == "graph":
            assert batch.num_graphs == 12 and batch.x.shape[1] == 3
        else:
            assert batch["input_ids"].shape[0] == 12


@pytest.mark.slow
def test_rows_say_what_they_hold(built: Path) -> None:
    rows = read_jsonl(built / "manifest.jsonl")
    assert len({r["id"] for r in rows}) == len(rows)
    for row in rows:
        word = NUMBER_WORDS[row["text_language"]][row["label"]]
        assert word.lower() in row["text"].lower()
        assert row["audio_voice"].startswith(row["audio_language"][:2])
    import soundfile

    for row in rows:
        info = soundfile.info(str(built / row["audio"]))
        assert info.samplerate == 22050 and 0.2 < info.duration < 3.0
    # The split files partition the manifest; the first 10 samples form one full block.
    splits = {name: read_jsonl(built / f"{name}.jsonl") for name in ("train", "val", "test")}
    assert sorted((r for rs in splits.values() for r in rs), key=lambda r: r["id"]) == rows
    assert all(r["split"] == name for name, rs in splits.items() for r in rs)
    assert [r["split"] for r in rows[:10]].count("val") == 1
    assert [r["split"] for r in rows[:10]].count("test") == 1
    marker = json.loads((built / MARKER).read_text())
    assert marker["complete"] is True and marker["rows"] == 12


@pytest.mark.slow
def test_two_builds_are_identical(built: Path, tmp_path: Path) -> None:
    """Same seed, other worker count (2 processes here): same manifest and same bytes.

    PNG, WAV (espeak-ng), mp4 (libx264, one thread, bit-exact flags) and PLY are
    byte-identical. A ``.pt`` file holds a random ``serialization_id`` that torch.save
    writes into every archive, so graphs are compared by their tensors.
    """
    again = tmp_path / "again"
    build(again, limit=12, workers=2)
    assert (again / "manifest.jsonl").read_bytes() == (built / "manifest.jsonl").read_bytes()
    for row in read_jsonl(built / "manifest.jsonl"):
        for modality in ("image", "audio", "video", "pointcloud"):
            first, second = built / row[modality], again / row[modality]
            assert first.read_bytes() == second.read_bytes(), row[modality]
        first, second = (torch.load(root / row["graph"], weights_only=True)
                         for root in (built, again))
        assert first.keys() == second.keys()
        assert all(torch.equal(first[k], second[k]) for k in first)


@pytest.mark.slow
def test_a_finished_build_is_not_redone(built: Path, tmp_path: Path,
                                        monkeypatch: pytest.MonkeyPatch) -> None:
    out = copy_build(built, tmp_path / "copy")
    before = file_times(out)

    def fail(*args: Any) -> None:
        raise AssertionError("the cached build loaded the digits again")

    monkeypatch.setattr(build_module, "_load_digits", fail)
    # workers and progress change no output, so they do not invalidate the cache
    assert build(out, limit=12, workers=2, progress=True) == read_jsonl(out / "manifest.jsonl")
    assert file_times(out) == before


@pytest.mark.slow
def test_an_interrupted_build_resumes(built: Path, tmp_path: Path) -> None:
    out = copy_build(built, tmp_path / "copy")
    lost = ["video/digits-0003.mp4", "audio/digits-0007.wav", "graph/digits-0011.pt"]
    for name in lost:
        (out / name).unlink()
    (out / "manifest.jsonl").unlink()
    marker = json.loads((out / MARKER).read_text())
    (out / MARKER).write_text(json.dumps({**marker, "complete": False}))
    before = file_times(out)
    build(out, limit=12)
    after = file_times(out)
    for name in lost:
        assert (out / name).is_file()
    kept = [name for name in before if name.split("/")[0] in FILE_MODALITIES]
    assert kept and all(after[name] == before[name] for name in kept)
    for name in lost[:2]:
        assert (out / name).read_bytes() == (built / name).read_bytes()
    assert (out / "manifest.jsonl").read_bytes() == (built / "manifest.jsonl").read_bytes()


@pytest.mark.slow
def test_other_options_in_the_same_folder_need_overwrite(built: Path, tmp_path: Path) -> None:
    out = copy_build(built, tmp_path / "copy")
    with pytest.raises(anymodal.ConfigError, match=r"seed: 0 -> 1.*overwrite=true"):
        build(out, limit=3, seed=1)
    rows = build(out, limit=3, seed=1, modalities=["image"], overwrite=True)
    assert len(rows) == 3 and not (out / "audio").exists()
    assert sorted(p.name for p in (out / "image").iterdir()) == [
        f"digits-000{i}.png" for i in range(3)]


def test_a_subset_of_modalities(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # Neither espeak-ng nor ffmpeg is needed (nor looked for) without audio and video.
    monkeypatch.setenv("PATH", "")
    rows = build(tmp_path / "subset", limit=5, modalities=["text", "graph", "image"])
    assert len(rows) == 5
    for row in rows:
        assert set(row) == {"id", "label", "split", "image", "graph", "text", "text_language"}
    assert sorted(p.name for p in (tmp_path / "subset").iterdir() if p.is_dir()) == [
        "graph", "image"]


def test_missing_drops_modalities_from_a_fraction_of_rows(tmp_path: Path) -> None:
    modalities = ["image", "graph", "text"]
    full = build(tmp_path / "full", limit=60, modalities=modalities)
    rows = build(tmp_path / "missing", limit=60, modalities=modalities, missing=0.5)
    holes = [r for r in rows if any(r[m] is None for m in modalities)]
    assert 15 <= len(holes) <= 45  # Binomial(60, 0.5) is inside this range with p > 0.9999
    for row in holes:
        assert any(row[m] is not None for m in modalities)
        for m in ("image", "graph"):
            on_disk = (tmp_path / "missing" / m / f"{row['id']}.{'png' if m == 'image' else 'pt'}")
            assert on_disk.exists() == (row[m] is not None)
    # Every choice besides the dropped modalities is the one the complete build made.
    for kept, whole in zip(rows, full):
        assert {k: v for k, v in kept.items() if v is not None}.items() <= whole.items()
    text = anymodal.get_modality("text")
    image = anymodal.get_modality("image", size=32)
    for row in rows:  # what is left is readable
        if row["text"] is not None:
            text.transform(text.load(row["text"]), False)
        if row["image"] is not None:
            image.transform(image.load(str(tmp_path / "missing" / row["image"])), False)


def test_bad_options_are_config_errors(tmp_path: Path) -> None:
    with pytest.raises(anymodal.ConfigError, match=r"'smell'.*valid choices: image, audio, "
                       r"video, pointcloud, graph, text"):
        build(tmp_path / "x", modalities=["image", "smell"])
    with pytest.raises(anymodal.ConfigError, match=r"missing=1.0 must be in \[0, 1\)"):
        build(tmp_path / "x", missing=1.0)
    with pytest.raises(anymodal.ConfigError, match="has no param 'limt'"):
        build(tmp_path / "x", limt=3)
    assert not (tmp_path / "x").exists()


@pytest.mark.parametrize(("modality", "program"), [("audio", "espeak-ng"), ("video", "ffmpeg")])
def test_a_missing_program_says_how_to_install_it(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                  modality: str, program: str) -> None:
    monkeypatch.setenv("PATH", "")
    with pytest.raises(anymodal.PluginError,
                       match=rf"{program} is not installed.*apt-get install -y {program}"):
        build(tmp_path / "x", limit=2, modalities=["image", modality])


@pytest.mark.slow
def test_the_command_line_builds_and_reports_errors(tmp_path: Path) -> None:
    env = {**os.environ, "TQDM_DISABLE": "1"}
    # key=value options go before the --options: argparse takes no positional after them
    command = [sys.executable, "-m", "anymodal", "datasets", "build", "digits",
               str(tmp_path / "cli"), "seed=3", "workers=1", "--limit", "4",
               "--modalities", "image,text,audio", "--missing", "0.5"]
    done = subprocess.run(command, capture_output=True, text=True, env=env, timeout=300)
    assert done.returncode == 0, done.stderr
    assert f"manifest: {tmp_path / 'cli' / 'manifest.jsonl'}" in done.stdout
    rows = read_jsonl(tmp_path / "cli" / "manifest.jsonl")
    assert len(rows) == 4 and {k for r in rows for k in r} >= {"image", "text", "audio"}
    assert not (tmp_path / "cli" / "video").exists()
    config = json.loads((tmp_path / "cli" / MARKER).read_text())["config"]
    assert (config["seed"], config["missing"], config["limit"]) == (3, 0.5, 4)
    bad = subprocess.run([*command[:6], str(tmp_path / "bad"), "--modalities", "image,smell"],
                         capture_output=True, text=True, env=env, timeout=300)
    assert bad.returncode == 2
    assert "unknown modality 'smell'; valid choices: image, audio" in bad.stderr


def test_the_digits_are_scikit_learns() -> None:
    images, labels = build_module._load_digits(20)
    assert images.shape == (20, 8, 8) and labels.tolist()[:10] == list(range(10))
    assert np.issubdtype(labels.dtype, np.integer) and images.max() == 16.0


def test_a_failing_program_names_the_file_and_leaves_the_build_unfinished(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from anymodal_datasets.digits import plan

    monkeypatch.setattr(plan, "VOICES", {lang: ("zz-nope",) for lang in plan.VOICES})
    out = tmp_path / "broken"
    with pytest.raises(anymodal.PluginError, match=r"espeak-ng failed making .*digits-0000"
                       r"\.wav .*voice does not exist"):
        build(out, limit=2, modalities=["audio"])
    assert json.loads((out / MARKER).read_text())["complete"] is False
    assert not (out / "manifest.jsonl").exists()
    assert not list((out / "audio").iterdir())  # no partial file under any name
