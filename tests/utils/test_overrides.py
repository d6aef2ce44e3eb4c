"""Command-line overrides follow one rule: ``key=value`` replaces, ``key+=value`` merges;
and every unknown key is reported at once."""

from __future__ import annotations

from pathlib import Path

import pytest
from omegaconf import OmegaConf

from anymodal.config import ExperimentConfig, load_config
from anymodal.errors import ConfigError
from anymodal.utils.overrides import parse_override, type_at, unknown_keys


@pytest.fixture
def recipe(tmp_path: Path) -> Path:
    path = tmp_path / "r.yaml"
    path.write_text(
        "modalities:\n"
        "  a: {modality: vector, options: {view_seed: 1, noise: 0.5}, params: {width: 32, "
        "hidden: 16}, lr_mult: 0.5}\n"
        "  b: {modality: vector, options: {view_seed: 2}}\n"
        "logging: {trackers: [csv]}\n")
    return path


def test_a_mapping_given_for_a_key_replaces_it(recipe: Path) -> None:
    config = load_config(recipe, ["modalities.a={modality: vector, freeze: true}"])
    a = config.modalities.a
    assert a.freeze is True
    assert dict(a.params) == {} and dict(a.options) == {}  # the old params are gone
    assert a.lr_mult == 1.0  # a field left out takes its schema default
    assert dict(config.modalities.b.options) == {"view_seed": 2}  # siblings untouched


def test_a_free_mapping_is_replaced_whole(recipe: Path) -> None:
    config = load_config(recipe, ["modalities.a.params={width: 64}"])
    assert dict(config.modalities.a.params) == {"width": 64}


def test_plus_equals_merges_a_mapping(recipe: Path) -> None:
    config = load_config(recipe, ["modalities.a.params+={width: 64}",
                                  "modalities.a+={freeze: true}"])
    a = config.modalities.a
    assert dict(a.params) == {"width": 64, "hidden": 16}
    assert a.freeze is True and a.lr_mult == 0.5 and a.options.noise == 0.5


def test_plus_equals_extends_a_list_and_equals_replaces_it(recipe: Path) -> None:
    assert list(load_config(recipe, ["logging.trackers+=[tensorboard]"]).logging.trackers) \
        == ["csv", "tensorboard"]
    assert list(load_config(recipe, ["logging.trackers=[tensorboard]"]).logging.trackers) \
        == ["tensorboard"]


def test_scalars_dataclass_fields_and_new_keys(recipe: Path) -> None:
    config = load_config(recipe, ["train.max_steps=7", "optim.lr=1e-3",
                                  "data.val={kind: synthetic, size: 8}",
                                  "modalities.c.modality=vector",
                                  "model={embed_dim: 8}", "model.head=mlp"])
    assert config.train.max_steps == 7 and config.optim.lr == pytest.approx(1e-3)
    assert config.data.val.size == 8 and config.data.val.seed == 0
    assert config.modalities.c.modality == "vector"
    assert config.model.embed_dim == 8 and config.model.head == "mlp"
    assert config.model.normalize is True  # replaced whole: the default, not the old value


def test_later_overrides_apply_in_order(recipe: Path) -> None:
    config = load_config(recipe, ["modalities.a.params+={depth: 3}",
                                  "modalities.a.params={width: 8}"])
    assert dict(config.modalities.a.params) == {"width": 8}


def test_plus_equals_on_a_scalar_is_refused(recipe: Path) -> None:
    with pytest.raises(ConfigError, match=r"'\+=' merges a mapping.*'train.max_steps'"):
        load_config(recipe, ["train.max_steps+=3"])


def test_every_unknown_key_is_listed_at_once(recipe: Path) -> None:
    with pytest.raises(ConfigError) as info:
        load_config(recipe, ["train.max_step=3", "data.batchsize=4", "modalities.a.paramz.x=1",
                             "train.max_steps=5"])
    message = str(info.value)
    assert message.startswith("3 unknown config keys")
    assert "'train.max_step'; did you mean 'max_steps'?" in message
    assert "'data.batchsize'; did you mean 'batch_size'?" in message
    assert "'modalities.a.paramz'; did you mean 'params'?" in message


def test_unknown_keys_in_the_recipe_itself_are_all_listed(tmp_path: Path) -> None:
    path = tmp_path / "typos.yaml"
    path.write_text("modalities: {a: {modality: vector, encodr: x}}\ntrain: {max_step: 3}\n"
                    "optim: {lrr: 1}\n")
    with pytest.raises(ConfigError, match="3 unknown config keys") as info:
        load_config(path)
    assert "'modalities.a.encodr'; did you mean 'encoder'?" in str(info.value)
    assert str(path) in str(info.value)


def test_every_unknown_param_of_an_encoder_is_listed_at_once(recipe: Path) -> None:
    with pytest.raises(ConfigError, match=r"has no params \['widht', 'hiden'\]"):
        load_config(recipe, ["modalities.a.params+={widht: 3, hiden: 4}"])


def test_parse_override() -> None:
    item = parse_override("modalities.text={encoder: text_minilm, freeze: true}")
    assert item.key == "modalities.text" and not item.merge
    assert item.value == {"encoder": "text_minilm", "freeze": True}
    item = parse_override("a.b+=[1, 2]")
    assert item.key == "a.b" and item.merge and item.value == [1, 2]
    for bad in ("nonsense", "=3", " a=1"):
        with pytest.raises(ConfigError, match="must look like key=value"):
            parse_override(bad)


def test_type_at_and_unknown_keys_follow_the_schema() -> None:
    from anymodal.config import DatasetConfig, ModalityConfig

    assert type_at(ExperimentConfig, "modalities.x") is ModalityConfig
    assert type_at(ExperimentConfig, "data.val") is DatasetConfig
    assert type_at(ExperimentConfig, "train.nope") is None
    data = OmegaConf.to_container(OmegaConf.create(
        {"modalities": {"x": {"params": {"anything": 1}, "bogus": 2}}, "train": {"a": 1}}))
    assert unknown_keys(data, ExperimentConfig) == ["modalities.x.bogus", "train.a"]
