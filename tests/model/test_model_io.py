"""Model folders on disk: verified on load, crash-safe replace, races, permissions."""

from __future__ import annotations

import json
import os
import stat
from pathlib import Path

import pytest
import torch

import anymodal
from anymodal.config import load_config
from anymodal.errors import ArtifactError
from tests.conftest import vector_overrides
from tests.fault_injection import every_kill_point, race


def _model(tmp_path: Path, seed: int = 0) -> anymodal.MultiModalModel:
    torch.manual_seed(seed)
    return anymodal.MultiModalModel(load_config(None, vector_overrides(tmp_path)))


@pytest.fixture
def saved(tmp_path: Path) -> Path:
    folder = tmp_path / "saved"
    _model(tmp_path).save_pretrained(folder)
    return folder


def test_a_bit_flip_in_the_weights_is_refused_naming_the_file(saved: Path) -> None:
    # issue 14: a bit flip in model.safetensors used to load silently.
    raw = bytearray((saved / "model.safetensors").read_bytes())
    raw[-5] ^= 0x01
    (saved / "model.safetensors").write_bytes(bytes(raw))
    with pytest.raises(ArtifactError, match=r"model\.safetensors is damaged: sha256"):
        anymodal.load_model(saved)


def test_truncated_weights_are_refused_naming_the_file(saved: Path) -> None:
    raw = (saved / "model.safetensors").read_bytes()
    (saved / "model.safetensors").write_bytes(raw[: len(raw) // 2])
    with pytest.raises(ArtifactError, match=r"model\.safetensors has \d+ bytes.*expects"):
        anymodal.load_model(saved)


def test_the_recorded_fingerprint_is_compared(saved: Path) -> None:
    # issue 14: anymodal.json's fingerprint was never compared.
    manifest = json.loads((saved / "anymodal.json").read_text())
    manifest["fingerprint"] = "0123456789abcdef"
    (saved / "anymodal.json").write_text(json.dumps(manifest))
    with pytest.raises(ArtifactError, match=r"fingerprint .* records '0123456789abcdef'"):
        anymodal.load_model(saved)


@pytest.mark.parametrize("damage", ["truncated", "not_object", "no_files", "bad_entry"])
def test_a_damaged_manifest_names_the_file(saved: Path, damage: str) -> None:
    # issue 14: damaged files raised raw KeyError/TypeError naming no file.
    path = saved / "anymodal.json"
    manifest = json.loads(path.read_text())
    if damage == "truncated":
        path.write_text(path.read_text()[:40])
    elif damage == "not_object":
        path.write_text("[1, 2]")
    elif damage == "no_files":
        del manifest["files"]
        path.write_text(json.dumps(manifest))
    else:
        manifest["files"]["model.safetensors"] = 7
        path.write_text(json.dumps(manifest))
    with pytest.raises(ArtifactError, match=r"anymodal\.json|model\.safetensors"):
        anymodal.load_model(saved)


def test_a_kill_at_any_rename_or_delete_of_a_save_leaves_a_loadable_model(
        tmp_path: Path, saved: Path) -> None:
    # issue 14: a kill between save_model's two renames left nothing at the target.
    old = anymodal.load_model(saved).fingerprint()
    new_model = _model(tmp_path, seed=1)
    new = new_model.fingerprint()
    points = 0
    for _ in every_kill_point(lambda: new_model.save_pretrained(saved)):
        points += 1
        assert anymodal.load_model(saved).fingerprint() in (old, new)
        assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".")] == []
    assert points >= 3
    assert anymodal.load_model(saved).fingerprint() == new


def test_two_processes_saving_at_once_leave_a_loadable_model(tmp_path: Path) -> None:
    # issue 14: after one raced save, every later save of that process failed.
    models = [_model(tmp_path, seed=s) for s in (1, 2)]
    target = tmp_path / "raced"

    def saves(model: anymodal.MultiModalModel) -> None:
        for _ in range(6):
            model.save_pretrained(target)

    race([lambda model=model: saves(model) for model in models])
    assert anymodal.load_model(target).fingerprint() in {m.fingerprint() for m in models}
    models[0].save_pretrained(target)  # and the next save still works
    assert anymodal.load_model(target).fingerprint() == models[0].fingerprint()


@pytest.mark.parametrize("mask", [0o022, 0o077])
def test_a_model_folder_gets_the_umask_permissions(tmp_path: Path, mask: int) -> None:
    # issue 20 item 6: model folders were drwx------ and safetensors -rw------- whatever the umask.
    model = _model(tmp_path)
    old = os.umask(mask)
    try:
        model.save_pretrained(tmp_path / "m")
    finally:
        os.umask(old)
    assert stat.S_IMODE((tmp_path / "m").stat().st_mode) == 0o777 & ~mask
    for name in ("model.safetensors", "config.yaml", "anymodal.json"):
        assert stat.S_IMODE((tmp_path / "m" / name).stat().st_mode) == 0o666 & ~mask


def test_a_foreign_folder_is_not_replaced(tmp_path: Path) -> None:
    (tmp_path / "mine").mkdir()
    (tmp_path / "mine" / "thesis.tex").write_text("precious")
    with pytest.raises(ArtifactError, match=r"not a model folder.*not replaced"):
        _model(tmp_path).save_pretrained(tmp_path / "mine")
    assert (tmp_path / "mine" / "thesis.tex").read_text() == "precious"


def test_a_folder_saved_before_an_option_existed_still_loads(saved: Path) -> None:
    """A later anymodal adds options (resolved to their defaults at load): the folder's
    identity is the config it was saved with, so its recorded fingerprint still matches."""
    config = saved / "config.yaml"
    text = config.read_text()
    assert "center: null" in text  # the objective decides (clip: uncentred)
    older = text.replace("  center: null\n", "")  # as written before model.center existed
    config.write_text(older)
    manifest = json.loads((saved / "anymodal.json").read_text())
    import hashlib

    from anymodal.model import io

    entry = manifest["files"]["config.yaml"]
    entry["sha256"] = hashlib.sha256(older.encode()).hexdigest()
    entry["size"] = len(older.encode())
    # what that older anymodal recorded: the hash of the text it wrote, and the weights
    manifest["fingerprint"] = io.fingerprint(older, io.read_weights(saved))
    (saved / "anymodal.json").write_text(json.dumps(manifest))
    model = anymodal.load_model(saved)
    assert model.fingerprint() == manifest["fingerprint"]
    assert model.config.model.center is False  # saved before the option: never centred
    model.save_pretrained(saved.parent / "again")  # and a re-save loads too
    assert anymodal.load_model(saved.parent / "again").fingerprint() == manifest["fingerprint"]
