"""Per-pair loss weights of ``clip`` (``pair_weights``) against a float64 reference."""

from __future__ import annotations

import math

import pytest
import torch

import anymodal
from anymodal.objectives.clip import ClipConfig, ClipLoss


def _reference(emb: dict[str, torch.Tensor], scale: float, present: dict[str, torch.Tensor],
               weights: dict[frozenset[str], float], reduction: str) -> torch.Tensor:
    """Row-by-row symmetric InfoNCE per pair, then the weighted mean or sum (float64)."""
    names = list(emb)
    total = torch.zeros((), dtype=torch.float64)
    weight_sum = 0.0
    for i, a in enumerate(names):
        for b in names[i + 1:]:
            rows = [r for r in range(len(present[a])) if present[a][r] and present[b][r]]
            if len(rows) < 2:
                continue
            pair = torch.zeros((), dtype=torch.float64)
            for q, k in ((a, b), (b, a)):
                for pos, r in enumerate(rows):
                    logits = torch.stack([scale * emb[q][r] @ emb[k][c] for c in rows])
                    pair = pair - (logits[pos] - torch.logsumexp(logits, 0)) / len(rows)
            w = weights.get(frozenset((a, b)), 1.0)
            total = total + w * pair / 2
            weight_sum += w
    return total / weight_sum if reduction == "mean" else total


@pytest.mark.parametrize("reduction", ["mean", "sum"])
def test_weighted_pairs_match_the_float64_reference(reduction: str) -> None:
    g = torch.Generator().manual_seed(4)
    emb = {k: torch.nn.functional.normalize(torch.randn(7, 5, generator=g, dtype=torch.float64),
                                            dim=-1) for k in ("image", "audio", "text")}
    # Rows 0-2 lack text, rows 5-6 lack audio: every pair sees a different set of rows.
    present = {"image": torch.ones(7, dtype=torch.bool),
               "audio": torch.tensor([1, 1, 1, 1, 1, 0, 0], dtype=torch.bool),
               "text": torch.tensor([0, 0, 0, 1, 1, 1, 1], dtype=torch.bool)}
    objective = ClipLoss(ClipConfig(pair_weights="text:image=0.5, audio:image=3",
                                    reduction=reduction))
    out = objective(emb, 6.0, present)
    want = _reference(emb, 6.0, present, {frozenset(("image", "text")): 0.5,
                                          frozenset(("image", "audio")): 3.0}, reduction)
    torch.testing.assert_close(out["loss"], want, rtol=1e-12, atol=1e-12)
    # The parts stay unweighted: each pair's own loss.
    plain = ClipLoss(ClipConfig(reduction=reduction))(emb, 6.0, present)
    torch.testing.assert_close(out["image_text_loss"], plain["image_text_loss"])
    assert not math.isclose(float(out["loss"]), float(plain["loss"]))


def test_a_pair_without_rows_takes_no_weight_in_the_mean() -> None:
    g = torch.Generator().manual_seed(1)
    emb = {k: torch.nn.functional.normalize(torch.randn(6, 4, generator=g, dtype=torch.float64),
                                            dim=-1) for k in ("image", "audio", "text")}
    # A mixture batch: image-text rows and image-audio rows, never audio with text.
    present = {"image": torch.ones(6, dtype=torch.bool),
               "audio": torch.tensor([1, 1, 1, 0, 0, 0], dtype=torch.bool),
               "text": torch.tensor([0, 0, 0, 1, 1, 1], dtype=torch.bool)}
    out = ClipLoss(ClipConfig(pair_weights="audio:text=100,image:text=0.25"))(emb, 3.0, present)
    want = (0.25 * out["image_text_loss"] + out["image_audio_loss"]) / 1.25
    torch.testing.assert_close(out["loss"], want)


@pytest.mark.parametrize("spec", ["image:text", "image:text=0", "image:image=1",
                                  "image:text=-1", "image:text=nan", "a:b=1,b:a=2"])
def test_bad_pair_weights_are_config_errors(spec: str) -> None:
    with pytest.raises(anymodal.ConfigError, match="pair_weights"):
        anymodal.create_objective("clip", pair_weights=spec)


def test_a_weight_for_an_unknown_modality_is_refused_at_the_first_batch() -> None:
    objective = ClipLoss(ClipConfig(pair_weights="image:depth=2"))
    emb = {k: torch.nn.functional.normalize(torch.randn(4, 3), dim=-1) for k in ("image", "text")}
    with pytest.raises(anymodal.ConfigError, match=r"pair_weights names \['depth'\]"):
        objective(emb, 1.0)
