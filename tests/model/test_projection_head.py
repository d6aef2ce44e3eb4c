"""ProjectionHead centring: the batch mean with its gradient in training, a running mean in
evaluation, and the objectives that turn it on by default (siglip, mv_infonce)."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import pytest
import torch

import anymodal
from anymodal.config import load_config
from anymodal.model import io
from anymodal.model.core import DEFAULT_LOGIT_SCALE, ProjectionHead
from tests.conftest import vector_overrides


def _features(rows: int = 16, width: int = 12, shared: float = 5.0) -> torch.Tensor:
    # A large shared component, as fresh encoders give: every row in nearly one direction.
    torch.manual_seed(0)
    return torch.randn(rows, width) + shared * torch.ones(width)


def test_training_output_has_no_shared_direction_to_learn() -> None:
    """The batch mean is subtracted with its gradient, so a change every row shares (the
    collapse direction of sigmoid / multi-view losses) has no effect and no gradient: the
    sum of a batch's outputs is zero whatever the weights, and so is its gradient."""
    head = ProjectionHead(12, 8, center=True).train()
    out = head(_features())
    torch.testing.assert_close(out.mean(0), torch.zeros(8), atol=1e-5, rtol=0)
    out.sum().backward()
    weight = head.net.weight
    assert weight.grad is not None
    torch.testing.assert_close(weight.grad, torch.zeros_like(weight), atol=1e-5, rtol=0)
    # The rows' own differences still get their gradient.
    head.zero_grad()
    head(_features())[0].sum().backward()
    assert weight.grad is not None and float(weight.grad.abs().sum()) > 0


def test_running_mean_is_used_in_evaluation_and_moved_only_by_backpropagating_passes() -> None:
    head = ProjectionHead(12, 8, center=True).train()
    features = _features()
    with torch.no_grad():  # gradient caching's first pass: the rows are seen again later
        head(features)
    assert int(head.batches_seen) == 0
    first = head(features)
    assert int(head.batches_seen) == 1
    with torch.no_grad():
        raw = head.net(features)
    torch.testing.assert_close(head.center, raw.mean(0))  # the first batch sets it
    head(features * 2.0)
    expected = 0.9 * raw.mean(0) + 0.1 * (2.0 * raw).mean(0)
    torch.testing.assert_close(head.center, expected)
    head.eval()
    with torch.no_grad():
        torch.testing.assert_close(head(features), raw - expected)
        # One row in training mode (no batch to take a mean of) uses the running mean too.
        torch.testing.assert_close(head.train()(features[:1]), raw[:1] - expected)
    assert first.shape == (16, 8)


def test_uncentred_head_is_the_plain_projection() -> None:
    head = ProjectionHead(12, 8).train()
    features = _features()
    torch.testing.assert_close(head(features), head.net(features))
    assert "center" not in head.state_dict()


@pytest.mark.parametrize(("objective", "default"), [
    ("siglip", True), ("mv_infonce", True), ("clip", False), ("mv_dhel", False),
    ("symile", False), ("gram", False)])
def test_objective_decides_when_the_recipe_does_not(tmp_path: Path, objective: str,
                                                    default: bool) -> None:
    def heads(*extra: str) -> list[bool]:
        config = load_config(None, [*vector_overrides(tmp_path, objective), *extra])
        return [head.centered for head in anymodal.MultiModalModel(config).heads.values()]

    assert set(heads()) == {default}
    assert set(heads("model.center=false")) == {False}
    assert set(heads("model.center=true")) == {True}


def test_objective_picks_the_initial_logit_scale_when_the_recipe_does_not(
        tmp_path: Path) -> None:
    def scale(objective: str, *extra: str) -> float:
        config = load_config(None, [*vector_overrides(tmp_path, objective), *extra])
        return float(anymodal.MultiModalModel(config).logit_scale().detach())

    assert scale("mv_infonce") == pytest.approx(5.0)
    assert scale("clip") == pytest.approx(DEFAULT_LOGIT_SCALE)
    assert scale("siglip") == pytest.approx(DEFAULT_LOGIT_SCALE)
    assert scale("mv_infonce", "model.logit_scale_init=10") == pytest.approx(10.0)


def test_siglip_folder_saved_before_centring_existed_loads_uncentred(tmp_path: Path) -> None:
    """Such a folder's config has no ``model.center`` and its weights no centring buffers:
    it must load as it was trained, not with siglip's default of today."""
    torch.manual_seed(0)
    config = load_config(None, [*vector_overrides(tmp_path, "siglip"), "model.center=false"])
    folder = anymodal.MultiModalModel(config).save_pretrained(tmp_path / "model")
    text = (folder / "config.yaml").read_text()
    assert "  center: false\n" in text
    older = text.replace("  center: false\n", "")
    (folder / "config.yaml").write_text(older)
    manifest_path = folder / "anymodal.json"
    manifest = json.loads(manifest_path.read_text())
    manifest["files"]["config.yaml"]["sha256"] = hashlib.sha256(older.encode()).hexdigest()
    manifest["files"]["config.yaml"]["size"] = len(older.encode())
    manifest["fingerprint"] = io.fingerprint(older, io.read_weights(folder))
    manifest_path.write_text(json.dumps(manifest))
    model = anymodal.load_model(folder)
    assert not any(head.centered for head in model.heads.values())
