"""The plugin authoring kit (anymodal.authoring) and the shared layers (anymodal.layers)."""

from __future__ import annotations

import pickle
import types
from dataclasses import dataclass
from typing import Any

import pytest
import torch
from torch import nn

import anymodal
from anymodal.authoring import bind_encoder_params
from anymodal.layers import TransformerBlock, masked_mean
from anymodal.plugin_host.manager import PluginManager, reset_plugin_manager


@dataclass
class ToyConfig:
    """Options of a toy modality."""

    dim: int = 3
    scale: float = 1.0
    num_classes: int = 2


def load_toy(source: Any, config: ToyConfig) -> torch.Tensor:
    """A vector of ``dim`` copies of ``source``."""
    return torch.full((config.dim,), float(source))


def transform_toy(raw: torch.Tensor, train: bool, config: ToyConfig) -> torch.Tensor:
    """Scaled by the option ``scale``."""
    return raw * config.scale


def synthesize_toy(n: int, generator: torch.Generator, labels: torch.Tensor | None = None,
                   config: ToyConfig | None = None) -> list[torch.Tensor]:
    """``n`` random vectors."""
    assert config is not None
    return list(torch.randn(n, config.dim, generator=generator).unbind(0))


def check_toy(config: ToyConfig) -> ToyConfig:
    """Reject a non-positive dim."""
    if config.dim < 1:
        raise anymodal.ConfigError(f"modality 'toy': dim must be >= 1, got {config.dim}")
    return config


TOY = anymodal.define_modality(
    "toy", ToyConfig, load=load_toy, transform=transform_toy, collate=torch.stack,
    synthesize=synthesize_toy, default_encoder="toy_linear", validate=check_toy,
)


@dataclass
class ToyLinearConfig:
    """Hyper-parameters of ``toy_linear``."""

    in_dim: int = 3
    width: int = 4


@anymodal.encoder("toy_linear", config=ToyLinearConfig, binds={"in_dim": "dim"})
class ToyLinear(nn.Linear):
    """A linear map of toy vectors."""

    def __init__(self, config: ToyLinearConfig) -> None:
        super().__init__(config.in_dim, config.width)
        self.width = config.width


def test_define_modality_binds_options_into_functions_that_take_config() -> None:
    assert TOY.config == ToyConfig() and TOY.num_classes == 2 and TOY.config_cls is ToyConfig
    assert TOY.collate is torch.stack  # takes no config: used as given
    wide = TOY.configure(ToyConfig(dim=5, scale=2.0))
    item = wide.transform(wide.load(1.5), False)
    assert torch.equal(item, torch.full((5,), 3.0))
    assert wide.name == "toy" and wide.configure is not None
    again = wide.configure(ToyConfig(dim=2))
    assert again.load(1).shape == (2,)
    load, transform = pickle.loads(pickle.dumps((wide.load, wide.transform)))
    assert torch.equal(transform(load(1.5), False), item)
    assert pickle.loads(pickle.dumps(wide)).config == ToyConfig(dim=5, scale=2.0)


def test_define_modality_runs_validate_and_refuses_bad_configs() -> None:
    with pytest.raises(anymodal.ConfigError, match="dim must be >= 1, got 0"):
        TOY.configure(ToyConfig(dim=0))
    with pytest.raises(anymodal.ConfigError, match="takes a ToyConfig"):
        TOY.configure({"dim": 3})

    @dataclass
    class NoDefault:
        size: int

    with pytest.raises(anymodal.PluginError, match="needs a default"):
        anymodal.define_modality("nodef", NoDefault, load=load_toy, transform=transform_toy,
                                 collate=torch.stack, synthesize=synthesize_toy,
                                 default_encoder="nodef_x")


def test_encoder_decorator_declares_the_spec() -> None:
    spec = ToyLinear.encoder_spec
    assert (spec.name, spec.modality, spec.factory) == ("toy_linear", "toy", ToyLinear)
    assert spec.description == "A linear map of toy vectors." and spec.binds == {"in_dim": "dim"}
    with pytest.raises(anymodal.PluginError, match="<modality>_<arch>"):
        anymodal.encoder("ToyBig", config=ToyLinearConfig)
    with pytest.raises(anymodal.PluginError, match="<modality>_<arch>"):
        anymodal.encoder("audio_cnn", config=ToyLinearConfig, modality="toy")
    with pytest.raises(anymodal.PluginError, match=r"binds params \['in_channels'\]"):
        anymodal.encoder("toy_cnn", config=ToyLinearConfig, binds=["in_channels"])


def test_bound_params_come_from_the_modality_and_contradictions_are_errors() -> None:
    spec = ToyLinear.encoder_spec
    wide = TOY.configure(ToyConfig(dim=7))
    assert bind_encoder_params(spec, wide, {"width": 2}) == {"width": 2, "in_dim": 7}
    assert bind_encoder_params(spec, wide, {"in_dim": 7}) == {"in_dim": 7}
    assert bind_encoder_params(spec, None, {"in_dim": 9}) == {"in_dim": 9}
    with pytest.raises(anymodal.ConfigError, match=r"in_dim=9 differs .* dim=7"):
        bind_encoder_params(spec, wide, {"in_dim": 9})


def _derived_vector_plugin() -> types.SimpleNamespace:
    def my_vector() -> anymodal.ModalitySpec:
        return anymodal.derive_modality("my_vector", base="vector", dim=8, view_seed=5)

    def my_vector_mlp() -> anymodal.EncoderSpec:
        return anymodal.derive_encoder("my_vector_mlp", base="vector_mlp", modality="my_vector")

    register_modalities, register_encoders = anymodal.plugin_hooks(
        modalities=[my_vector], encoders=[my_vector_mlp])
    return types.SimpleNamespace(anymodal_register_modalities=register_modalities,
                                 anymodal_register_encoders=register_encoders)


def test_a_plugin_derives_a_modality_from_the_builtin_vector() -> None:
    manager = PluginManager(autoload=False).load()
    assert manager.register_plugin(_derived_vector_plugin(), name="derived"), manager.failures
    derived = manager.modalities.get("my_vector")
    assert derived.name == "my_vector" and derived.default_encoder == "my_vector_mlp"
    assert derived.config.dim == 8 and derived.load([0.5] * 8).shape == (8,)
    assert derived.configure(derived.config_cls(dim=4)).name == "my_vector"
    reset_plugin_manager(manager)
    try:
        spec = anymodal.get_modality("my_vector", dim=6)
        encoder = anymodal.create_encoder("my_vector_mlp", spec, width=5)
        assert encoder.config.in_dim == 6
        batch = spec.collate(spec.synthesize(4, torch.Generator().manual_seed(0)))
        assert encoder(batch).shape == (4, 5)
        config = anymodal.load_config(None, {
            "modalities": {"a": {"modality": "my_vector"}, "b": {"modality": "vector"}},
            "model": {"embed_dim": 8},
        })
        model = anymodal.MultiModalModel(config)
        batches = {key: anymodal.testing.synthetic_batch(model.modalities[key], 6)
                   for key in ("a", "b")}
        loss = model.compute_loss(batches)["loss"]
        loss.backward()
        assert torch.isfinite(loss) and model.encoders["a"].config.in_dim == 8
    finally:
        reset_plugin_manager(None)


def test_deriving_from_a_modality_not_registered_yet_names_the_order() -> None:
    register_modalities, _ = anymodal.plugin_hooks(
        modalities=[lambda: anymodal.derive_modality("my_sonar", base="sonar")])
    plugin = types.SimpleNamespace(anymodal_register_modalities=register_modalities)
    manager = PluginManager(autoload=False).load()
    assert not manager.register_plugin(plugin, name="sonar_fan")
    (failure,) = manager.failures
    assert "'sonar' is not registered before this plugin" in failure.reason
    assert "built-ins, then entry points by name" in failure.reason


def test_transformer_block_ignores_padded_tokens() -> None:
    torch.manual_seed(0)
    block = TransformerBlock(16, 4, mlp_ratio=2.0).eval()
    tokens = torch.randn(1, 5, 16)
    padded = torch.cat([tokens, torch.full((1, 3, 16), 1e3)], dim=1)
    keep = torch.tensor([[True] * 5 + [False] * 3])
    with torch.no_grad():
        torch.testing.assert_close(block(padded, keep)[:, :5], block(tokens), atol=1e-5,
                                   rtol=1e-5)
    with pytest.raises(ValueError, match="not divisible by heads=3"):
        TransformerBlock(16, 3)


def test_masked_mean_skips_padding_and_gives_zeros_for_empty_rows() -> None:
    x = torch.tensor([[[1.0], [3.0], [100.0]], [[5.0], [6.0], [7.0]]])
    mask = torch.tensor([[True, True, False], [False, False, False]])
    assert masked_mean(x, mask).tolist() == [[2.0], [0.0]]
