"""``dcl`` (DCL / DCLW) and ``infoloob`` (InfoLOOB / CLOOB): the published code's numbers and
float64 references for M = 2, 3, 4 with and without presence masks."""

from __future__ import annotations

import json
from pathlib import Path

import objectives_reference as ref
import pytest
import torch

import anymodal
from anymodal.objectives import (
    ClipConfig,
    ClipLoss,
    DCLConfig,
    DCLLoss,
    InfoLOOBConfig,
    InfoLOOBLoss,
    SigLipConfig,
    SigLipLoss,
)

FIXTURES = json.loads((Path(__file__).parent / "fixtures" / "published.json").read_text())
SCALE = 2.5

#: fixture name -> our objective computing the same loss on two modalities.
SAME_AS_PUBLISHED = {
    "dcl": lambda: DCLLoss(DCLConfig(intra_modal=True)),  # lightly always has intra terms
    "dclw": lambda: DCLLoss(DCLConfig(intra_modal=True, weighted=True, sigma=0.5)),
    # CLOOB sums its two directions; a single pair's mean is that pair.
    "infoloob": lambda: InfoLOOBLoss(),
}


@pytest.mark.parametrize("case", FIXTURES["cases"],
                         ids=[f"{c['name']}-s{c['scale']}" for c in FIXTURES["cases"]])
def test_matches_the_published_code(case: dict) -> None:
    x = torch.tensor(case["x"], dtype=torch.float64, requires_grad=True)
    y = torch.tensor(case["y"], dtype=torch.float64, requires_grad=True)
    objective = SAME_AS_PUBLISHED[case["name"]]().double()
    if case["name"] in ("dcl", "dclw"):
        # lightly normalises its inputs inside the loss; the model normalises before ours.
        inputs = {"x": torch.nn.functional.normalize(x, dim=-1),
                  "y": torch.nn.functional.normalize(y, dim=-1)}
    else:
        inputs = {"x": x, "y": y}
    loss = objective(inputs, case["scale"])["loss"]
    gx, gy = torch.autograd.grad(loss, [x, y])
    assert abs(float(loss.detach()) - case["loss"]) < 1e-6
    torch.testing.assert_close(gx, torch.tensor(case["grad_x"], dtype=torch.float64),
                               atol=1e-6, rtol=0)
    torch.testing.assert_close(gy, torch.tensor(case["grad_y"], dtype=torch.float64),
                               atol=1e-6, rtol=0)


def _compare(objective: torch.nn.Module, reference, m: int, with_present: bool,
             n: int = 6, seed: int = 0) -> dict[str, torch.Tensor]:
    objective = objective.double()
    emb = ref.embeddings(m, n, 5, seed)
    present = ref.present_masks(list(emb), n, seed, complete=3) if with_present else None
    scale = torch.tensor(SCALE, dtype=torch.float64, requires_grad=True)
    out = objective(emb, scale, present)
    got = ref.grads(out["loss"], [*emb.values(), scale])
    emb_ref = {k: v.detach().clone().requires_grad_() for k, v in emb.items()}
    scale_ref = scale.detach().clone().requires_grad_()
    expected = reference(emb_ref, scale_ref, present)
    want = ref.grads(expected, [*emb_ref.values(), scale_ref])
    torch.testing.assert_close(out["loss"], expected)
    for g, w in zip(got, want):
        torch.testing.assert_close(g, w)
    return out


@pytest.mark.parametrize("m", [2, 3, 4])
@pytest.mark.parametrize("with_present", [False, True])
@pytest.mark.parametrize(("weighted", "intra"), [(False, False), (True, False), (True, True)])
def test_dcl_matches_reference(m: int, with_present: bool, weighted: bool, intra: bool) -> None:
    config = DCLConfig(weighted=weighted, intra_modal=intra)
    out = _compare(DCLLoss(config), lambda e, s, p: ref.dcl(
        e, s, p, ref.all_pairs(list(e)), weighted=weighted, intra=intra), m, with_present)
    assert {"m0_m1_loss", "m0_m1_rows"} <= set(out)


def test_dcl_anchor_sum_matches_reference() -> None:
    pairs = [("m2", "m0"), ("m2", "m1")]
    _compare(DCLLoss(DCLConfig(anchor="m2", reduction="sum")),
             lambda e, s, p: ref.dcl(e, s, p, pairs, "sum"), 3, True)


@pytest.mark.parametrize("m", [2, 3, 4])
@pytest.mark.parametrize("with_present", [False, True])
@pytest.mark.parametrize("beta", [None, 8.0])
def test_infoloob_matches_reference(m: int, with_present: bool, beta: float | None) -> None:
    _compare(InfoLOOBLoss(InfoLOOBConfig(hopfield_beta=beta)),
             lambda e, s, p: ref.infoloob(e, s, p, ref.all_pairs(list(e)), beta=beta),
             m, with_present)


@pytest.mark.parametrize("params", [{"sigma": 0.0}, {"reduction": "max"}])
def test_dcl_rejects_bad_params(params: dict) -> None:
    with pytest.raises(anymodal.ConfigError):
        anymodal.create_objective("dcl", **params)


def test_infoloob_rejects_bad_beta() -> None:
    with pytest.raises(anymodal.ConfigError, match="hopfield_beta"):
        anymodal.create_objective("infoloob", hopfield_beta=-1.0)


@pytest.mark.parametrize("m", [2, 3, 4])
@pytest.mark.parametrize("with_present", [False, True])
@pytest.mark.parametrize(("smoothing", "beta", "alpha"),
                         [(0.1, 0.0, 0.0), (0.0, 0.5, 0.0), (0.0, 0.0, 2.0), (0.1, 0.5, 2.0)])
def test_clip_options_match_reference(m: int, with_present: bool, smoothing: float,
                                      beta: float, alpha: float) -> None:
    config = ClipConfig(label_smoothing=smoothing, hard_negative_beta=beta,
                        hard_negative_alpha=alpha)
    _compare(ClipLoss(config), lambda e, s, p: ref.clip_options(
        e, s, p, ref.all_pairs(list(e)), smoothing, beta, alpha), m, with_present)


def test_clip_fixed_and_learned_pair_scales_match_reference() -> None:
    fixed = ClipLoss(ClipConfig(pair_scales="m2:m0=7.5"))
    _compare(fixed, lambda e, s, p: ref.clip_options(
        e, s, p, ref.all_pairs(list(e)), scales={"m0|m2": 7.5}), 3, True)
    learned = ClipLoss(ClipConfig(pair_scales="m0:m1=4", learn_pair_scales=True)).double()
    emb = ref.embeddings(3, 6, 5, seed=2)
    out = learned(emb, SCALE)
    (param,) = list(learned.parameters())
    torch.testing.assert_close(param.exp(), torch.tensor(4.0, dtype=torch.float64))
    want = ref.clip_options(emb, torch.tensor(SCALE, dtype=torch.float64), None,
                            ref.all_pairs(list(emb)), scales={"m0|m1": param.exp()})
    torch.testing.assert_close(out["loss"], want)
    out["loss"].backward()
    assert param.grad is not None and float(param.grad) != 0.0


@pytest.mark.parametrize("m", [2, 3])
@pytest.mark.parametrize("with_present", [False, True])
def test_siglip_label_smoothing_matches_reference(m: int, with_present: bool) -> None:
    objective = SigLipLoss(SigLipConfig(init_bias=-1.0, label_smoothing=0.2)).double()
    bias = objective.bias.detach().clone()
    _compare(objective, lambda e, s, p: ref.siglip(e, s, bias, p, ref.all_pairs(list(e)),
                                                   smoothing=0.2), m, with_present)


@pytest.mark.parametrize(("name", "params", "match"), [
    ("clip", {"label_smoothing": 1.0}, "label_smoothing"),
    ("siglip", {"label_smoothing": -0.1}, "label_smoothing"),
    ("clip", {"pair_scales": "a:b"}, "pair_scales"),
    ("clip", {"pair_scales": "a:a=3"}, "pair_scales"),
    ("siglip", {"pair_scales": "a:b=-2"}, "pair_scales"),
])
def test_pairwise_options_are_validated(name: str, params: dict, match: str) -> None:
    with pytest.raises(anymodal.ConfigError, match=match):
        anymodal.create_objective(name, **params)
