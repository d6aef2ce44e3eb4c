"""Config loading: schema <- YAML <- overrides, and errors that name the key."""

from __future__ import annotations

from pathlib import Path

import pytest

from anymodal.config import load_config
from anymodal.errors import ConfigError

RECIPE = """
modalities:
  a: {modality: vector, options: {view_seed: 1}}
  b: {modality: vector, params: {width: 64}}
objective: {name: clip}
train: {max_steps: 5}
"""


@pytest.fixture
def recipe(tmp_path: Path) -> Path:
    path = tmp_path / "recipe.yaml"
    path.write_text(RECIPE)
    return path


def test_yaml_then_overrides(recipe: Path) -> None:
    config = load_config(recipe, ["train.max_steps=9", "modalities.b.params.width=16"])
    assert config.train.max_steps == 9
    assert config.modalities.b.params.width == 16
    assert config.modalities.a.options.view_seed == 1
    assert config.optim.lr == pytest.approx(1e-3)  # from the schema


@pytest.mark.parametrize(("override", "message"), [
    ("train.max_step=3", r"unknown config key 'train.max_step'; did you mean 'max_steps'\?"),
    ("train.max_steps=abc", r"config key 'train.max_steps'.*could not be converted to Integer"),
    ("modalities.a.encodr=x", r"unknown config key 'modalities.a.encodr'; did you mean 'encoder'"),
    ("modalities.a.encoder=vector_mpl", r"unknown encoder 'vector_mpl'; did you mean 'vector_mlp'"),
    ("modalities.a.params.widht=3", r"modalities.a.params: encoder 'vector_mlp' has no param "
                                    r"'widht'; did you mean 'width'"),
    ("modalities.a.params.width=wide", r"modalities.a.params: .*'width' \(expected int\)"),
    ("modalities.a.options.dimm=3", r"modalities.a.options: .*no param 'dimm'"),
    ("objective.name=clipp", r"unknown objective 'clipp'; did you mean 'clip'\?"),
    ("objective.params.pairz=all", r"objective.params: objective 'clip' has no param 'pairz'"),
    ("modalities.c.modality=audiio", r"modalities.c: unknown modality 'audiio'"),
    ("model.head=mlpp", r"config key 'model.head' is 'mlpp'; did you mean 'mlp'\?"),
    ("train.mixed_precision=fp8", r"train.mixed_precision.*valid choices: bf16, fp16, no"),
    ("nonsense", r"override 'nonsense' must look like key=value"),
])
def test_errors_name_the_key_and_choices(recipe: Path, override: str, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        load_config(recipe, [override])


def test_missing_recipe_and_bad_yaml(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="not found"):
        load_config(tmp_path / "nope.yaml")
    bad = tmp_path / "bad.yaml"
    bad.write_text("modalities: [unclosed\n")
    with pytest.raises(ConfigError, match="not valid YAML"):
        load_config(bad)


def test_no_modalities_is_an_error() -> None:
    with pytest.raises(ConfigError, match="'modalities' is empty"):
        load_config(None)
