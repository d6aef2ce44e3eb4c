"""Registration, parameter validation, input checks and the ``score`` rules."""

from __future__ import annotations

import objectives_reference as ref
import pytest
import torch

import anymodal
from anymodal import ConfigError
from anymodal.objectives import builtin_objective_specs

NAMES = ["clip", "siglip", "symile", "gram", "mv_infonce", "mv_dhel", "infoloob", "dcl"]


def test_builtin_specs_are_registered() -> None:
    assert [spec.name for spec in builtin_objective_specs()] == NAMES
    assert set(NAMES) <= set(anymodal.list_objectives())
    rules = {"clip": "sum", "siglip": "sum", "symile": "product", "gram": "span",
             "mv_infonce": "sum", "mv_dhel": "sum", "infoloob": "sum", "dcl": "sum"}
    for spec in builtin_objective_specs():
        assert spec.description
        assert isinstance(spec.factory(spec.config_cls()), anymodal.objectives.Objective)
        assert spec.factory.query_rule == rules[spec.name]
        assert spec.factory.subset_training_default == (spec.name in ("symile", "gram"))


def test_subclass_that_overrides_score_loses_its_parents_rule() -> None:
    from anymodal.objectives import ClipLoss, Objective

    class Scaled(ClipLoss):
        def score(self, query, candidates, logit_scale, missing=None):
            return -super().score(query, candidates, logit_scale)

    class Declared(Scaled):
        query_rule = "span"

    class Kept(ClipLoss):
        pass

    assert Scaled.query_rule is None and Declared.query_rule == "span"
    assert Kept.query_rule == "sum" and Objective.query_rule is None
    with pytest.raises(TypeError, match="query_rule"):
        type("Bad", (ClipLoss,), {"query_rule": "cosine"})


def test_template_subclass_writes_only_its_terms() -> None:
    """A new objective gets precision, gathering and finishing from the base class."""
    from anymodal.objectives import Objective

    class Alignment(Objective):
        name = "alignment"

        def terms(self, shard):
            a, b = (shard.local[m] for m in shard.names[:2])
            loss = shard.share(((a - b) ** 2).sum(), shard.n_global)
            return loss, {"pairs_loss": loss}

    emb = ref.embeddings(2, 5, 3, seed=0)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        out = Alignment()(emb, 2.0)
    want = ((emb["m0"] - emb["m1"]) ** 2).sum() / 5
    torch.testing.assert_close(out["loss"], want)
    torch.testing.assert_close(out["pairs_loss"], want)
    assert list(out) == ["loss", "pairs_loss"] and out["loss"].dtype == torch.float64


@pytest.mark.parametrize(
    ("name", "params"),
    [
        ("clip", {"anchor": "text", "reduction": "sum"}),
        ("siglip", {"init_bias": -5.0, "pairs": "a:b"}),
        ("symile", {"negatives": "n_squared", "missing": "drop", "seed": 3}),
        ("gram", {"anchor": "a", "label_smoothing": 0.0}),
        ("mv_infonce", {"missing": "drop"}),
        ("mv_dhel", {}),
    ],
)
def test_create_objective_with_params(name: str, params: dict) -> None:
    objective = anymodal.create_objective(name, **params)
    assert isinstance(objective, torch.nn.Module)
    for key, value in params.items():
        assert getattr(objective.config, key) == value


def test_siglip_bias_is_a_learnable_parameter() -> None:
    objective = anymodal.create_objective("siglip", init_bias=-7.0)
    assert dict(objective.named_parameters())["bias"].item() == -7.0
    assert "bias" in objective.state_dict()


@pytest.mark.parametrize(
    ("name", "params"),
    [
        ("clip", {"reduction": "max"}),
        ("siglip", {"reduction": "none"}),
        ("symile", {"negatives": "n_cubed"}),
        ("symile", {"missing": "zero"}),
        ("gram", {"label_smoothing": 1.5}),
        ("mv_dhel", {"missing": "skip"}),
        ("clip", {"temperature": 0.07}),
    ],
)
def test_bad_params_raise_config_error(name: str, params: dict) -> None:
    with pytest.raises(ConfigError):
        anymodal.create_objective(name, **params)


@pytest.mark.parametrize(
    "params", [{"anchor": "video"}, {"pairs": "m0:video"}, {"pairs": "m0-m1"},
               {"pairs": "m0:m0"}, {"anchor": "m0", "pairs": "m0:m1"}],
)
def test_bad_pairs_or_anchor_name_the_problem(params: dict) -> None:
    emb = ref.embeddings(2, 4, 3, seed=0, grad=False)
    with pytest.raises(ConfigError, match="clip"):
        anymodal.create_objective("clip", **params)(emb, 1.0)


def test_gram_unknown_anchor_is_a_config_error() -> None:
    emb = ref.embeddings(3, 4, 3, seed=0, grad=False)
    with pytest.raises(ConfigError, match="anchor 'text'"):
        anymodal.create_objective("gram", anchor="text")(emb, 1.0)


@pytest.mark.parametrize("name", NAMES)
def test_bad_inputs_raise_value_error(name: str) -> None:
    objective = anymodal.create_objective(name)
    emb = ref.embeddings(2, 4, 3, seed=0, grad=False)
    with pytest.raises(ValueError, match="at least two modalities"):
        objective({"m0": emb["m0"]}, 1.0)
    with pytest.raises(ValueError, match="same N and D"):
        objective({"m0": emb["m0"], "m1": emb["m1"][:3]}, 1.0)
    with pytest.raises(ValueError, match="present"):
        objective(emb, 1.0, {"m0": torch.ones(5, dtype=torch.bool)})
    with pytest.raises(ValueError, match="scalar"):
        objective(emb, torch.ones(2))


def test_score_rules() -> None:
    emb = ref.embeddings(3, 4, 6, seed=5, grad=False)
    query = {"m0": emb["m0"], "m1": emb["m1"]}
    candidates = emb["m2"]
    summed = 3.0 * (emb["m0"] + emb["m1"]) @ candidates.T
    product = 3.0 * (emb["m0"] * emb["m1"]) @ candidates.T
    for name in ["clip", "mv_infonce", "mv_dhel"]:
        scores = anymodal.create_objective(name).score(query, candidates, 3.0)
        torch.testing.assert_close(scores, summed)
    torch.testing.assert_close(
        anymodal.create_objective("symile").score(query, candidates, 3.0), product
    )
    siglip = anymodal.create_objective("siglip", init_bias=-2.0).double()
    torch.testing.assert_close(siglip.score(query, candidates, 3.0).detach(), summed - 4.0)


def test_symile_scores_a_subset_query_with_the_missing_embeddings() -> None:
    emb = ref.embeddings(4, 4, 6, seed=6, grad=False)
    missing = {"m1": emb["m1"][0], "m3": emb["m3"][1]}
    want = 3.0 * (emb["m0"] * emb["m1"][0] * emb["m3"][1]) @ emb["m2"].T
    symile = anymodal.create_objective("symile")
    torch.testing.assert_close(symile.score({"m0": emb["m0"]}, emb["m2"], 3.0, missing), want)
    # The pairwise and multi-view rules sum what is present: the missing ones take no part.
    clip = anymodal.create_objective("clip")
    torch.testing.assert_close(clip.score({"m0": emb["m0"]}, emb["m2"], 3.0, missing),
                               3.0 * emb["m0"] @ emb["m2"].T)
    with pytest.raises(ValueError, match="missing"):
        symile.score({"m0": emb["m0"]}, emb["m2"], 3.0, {"m1": torch.ones(5)})


@pytest.mark.parametrize("name", NAMES)
def test_score_checks_query_shapes(name: str) -> None:
    objective = anymodal.create_objective(name)
    candidates = torch.randn(5, 4)
    assert objective.score({"a": torch.randn(2, 4)}, candidates, 1.0).shape == (2, 5)
    with pytest.raises(ValueError):
        objective.score({}, candidates, 1.0)
    with pytest.raises(ValueError, match="query"):
        objective.score({"a": torch.randn(2, 3)}, candidates, 1.0)


@pytest.mark.parametrize("name", NAMES)
def test_every_input_gets_a_gradient(name: str) -> None:
    """DDP fails on parameters without a gradient: scale and bias must always get one."""
    emb = ref.embeddings(3, 4, 5, seed=1, dtype=torch.float32)
    scale = torch.tensor(5.0, requires_grad=True)
    objective = anymodal.create_objective(name)
    objective(emb, scale)["loss"].backward()
    assert scale.grad is not None
    assert all(p.grad is not None for p in objective.parameters())
    assert all(x.grad is not None for x in emb.values())


@pytest.mark.parametrize("name", NAMES)
def test_half_precision_and_autocast_compute_in_float32(name: str) -> None:
    emb = ref.embeddings(3, 6, 16, seed=4, dtype=torch.float32, grad=False)
    half = {k: v.bfloat16().requires_grad_() for k, v in emb.items()}
    exact = anymodal.create_objective(name)({k: v.bfloat16().float() for k, v in emb.items()}, 50.0)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        out = anymodal.create_objective(name)(half, 50.0)
    assert out["loss"].dtype == torch.float32
    torch.testing.assert_close(out["loss"], exact["loss"])
    out["loss"].backward()
    assert all(x.grad.dtype == torch.bfloat16 for x in half.values())


def test_gather_helpers_are_the_identity_in_one_process() -> None:
    from anymodal.objectives import gather

    x = torch.randn(3, 2, requires_grad=True)
    assert gather.world_size() == 1 and gather.rank() == 0
    assert gather.all_gather_with_grad(x) is x
    assert torch.equal(gather.all_gather_no_grad(x), x)
    assert gather.gathered_sizes(3, x.device) == [3]
    mean = gather.all_reduce_mean(x)
    assert torch.equal(mean, x) and not mean.requires_grad
