"""MultiModalModel: missing embeddings, logit scale, save/load round trip, provenance."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest
import torch

import anymodal
from anymodal.config import load_config
from anymodal.data.collate import collate_rows
from anymodal.data.synthetic import SyntheticDataset
from anymodal.errors import ArtifactError, ConfigError, PluginError
from anymodal.utils.checksums import digest_files
from tests.conftest import vector_overrides


def _model(tmp_path: Path, *extra: str) -> anymodal.MultiModalModel:
    torch.manual_seed(0)
    return anymodal.MultiModalModel(load_config(None, [*vector_overrides(tmp_path), *extra]))


def _batch(model: anymodal.MultiModalModel, missing: float = 0.4) -> dict:
    data = SyntheticDataset(model.modalities, 16, seed=3, missing={"b": missing})
    return collate_rows([data[i] for i in range(16)], model.modalities)


def test_missing_rows_get_the_learned_missing_embedding(tmp_path: Path) -> None:
    model = _model(tmp_path).eval()
    batch = _batch(model)
    absent = ~batch["present"]["b"]
    assert absent.any() and (~absent).any()
    out = model(batch)
    assert out["b"].shape == (16, 16)
    expected = torch.nn.functional.normalize(model.missing["b"], dim=0)
    torch.testing.assert_close(out["b"][absent], expected.expand(int(absent.sum()), -1))
    torch.testing.assert_close(out["b"].norm(dim=1), torch.ones(16))
    loss = model(batch, return_loss=True)["loss"]
    loss.backward()
    assert model.encoders["b"].net[0].weight.grad is not None


def test_logit_scale_is_clamped(tmp_path: Path) -> None:
    model = _model(tmp_path)
    with torch.no_grad():
        model.log_logit_scale.fill_(math.log(1000.0))
    assert float(model.logit_scale().detach()) == pytest.approx(100.0)


def test_frozen_encoder_stays_in_eval_mode(tmp_path: Path) -> None:
    model = _model(tmp_path, "modalities.a.freeze=true").train()
    assert not model.encoders["a"].training and model.encoders["b"].training
    assert not any(p.requires_grad for p in model.encoders["a"].parameters())


def test_save_load_round_trip_is_bit_identical(tmp_path: Path) -> None:
    model = _model(tmp_path, "objective.name=siglip").eval()
    batch = _batch(model)
    folder = tmp_path / "saved"
    model.save_pretrained(folder)
    assert sorted(p.name for p in folder.iterdir()) == [
        "anymodal.json", "config.yaml", "model.safetensors"]
    loaded = anymodal.load_model(folder)
    for key, value in model(batch).items():
        assert torch.equal(value, loaded(batch)[key])
    assert torch.equal(model(batch, return_loss=True)["loss"],
                       loaded(batch, return_loss=True)["loss"])
    assert loaded.fingerprint() == model.fingerprint()
    manifest = json.loads((folder / "anymodal.json").read_text())
    assert manifest["modalities"]["a"]["encoder"]["distribution"] == "anymodal"
    assert manifest["objective"]["name"] == "siglip"
    # Saving again over an existing folder replaces it whole, leaving no temporary folder.
    model.save_pretrained(folder)
    assert sorted(p.name for p in tmp_path.iterdir() if p.name.startswith(".")) == []


def test_loading_a_model_whose_plugin_is_missing_names_it(tmp_path: Path) -> None:
    model = _model(tmp_path)
    folder = tmp_path / "saved"
    model.save_pretrained(folder)
    manifest = json.loads((folder / "anymodal.json").read_text())
    manifest["modalities"]["a"]["encoder"].update(
        name="seismic_wavenet", plugin="seismic", distribution="anymodal-seismic",
        version="2.0")
    (folder / "anymodal.json").write_text(json.dumps(manifest))
    with pytest.raises(PluginError, match=r"needs encoder of 'a' 'seismic_wavenet' from plugin "
                                          r"'seismic' \(distribution anymodal-seismic 2.0\).*"
                                          r"pip install anymodal-seismic"):
        anymodal.load_model(folder)


def test_loading_refuses_incomplete_or_foreign_folders(tmp_path: Path) -> None:
    with pytest.raises(ArtifactError, match="no such directory"):
        anymodal.load_model(tmp_path / "nothing")
    model = _model(tmp_path)
    folder = tmp_path / "saved"
    model.save_pretrained(folder)
    (folder / "model.safetensors").unlink()
    with pytest.raises(ArtifactError, match=r"model\.safetensors is missing"):
        anymodal.load_model(folder)


def test_weights_that_do_not_match_the_config_are_refused(tmp_path: Path) -> None:
    model = _model(tmp_path)
    folder = tmp_path / "saved"
    model.save_pretrained(folder)
    config = (folder / "config.yaml").read_text().replace("embed_dim: 16", "embed_dim: 8")
    (folder / "config.yaml").write_text(config)
    manifest = json.loads((folder / "anymodal.json").read_text())  # checksums made to agree
    manifest["files"] = digest_files(folder, ["config.yaml", "model.safetensors"])
    (folder / "anymodal.json").write_text(json.dumps(manifest))
    with pytest.raises(ConfigError, match=r"does not match.*size mismatch"):
        anymodal.load_model(folder)


def test_gradient_checkpointing_gives_the_same_gradients(tmp_path: Path) -> None:
    plain = _model(tmp_path).train()
    ckpt = _model(tmp_path, "model.gradient_checkpointing=true").train()
    batch = _batch(plain, missing=0.0)
    plain(batch, return_loss=True)["loss"].backward()
    ckpt(batch, return_loss=True)["loss"].backward()
    for (name, a), (_, b) in zip(plain.named_parameters(), ckpt.named_parameters()):
        if a.grad is not None:
            torch.testing.assert_close(a.grad, b.grad, msg=name)


def _mean_cosine(x: torch.Tensor) -> float:
    n = x.shape[0]
    return float((x @ x.T).fill_diagonal_(0).sum() / (n * (n - 1)))


def test_centering_removes_the_direction_every_row_shares(tmp_path: Path) -> None:
    """Fresh encoders embed a whole modality in nearly one direction; model.center
    subtracts the running mean, so the rows spread out from the first training batch on."""
    plain, centred = _model(tmp_path), _model(tmp_path, "model.center=true")
    batch = _batch(plain, missing=0.0)
    plain.train(), centred.train()
    head = centred.heads["a"]
    features = centred.encoders["a"](batch["a"])
    out = head(features + 0.0)  # training mode with grad: the first batch sets the centre
    assert int(head.batches_seen) == 1
    assert torch.allclose(out.mean(0), torch.zeros(out.shape[1]), atol=1e-5)
    centre = head.center.clone()
    centred.eval()
    with torch.no_grad():
        head(features)
    assert torch.equal(head.center, centre)  # evaluation never moves the centre
    assert "heads.a.center" in centred.state_dict()
    assert "heads.a.center" not in plain.state_dict()
