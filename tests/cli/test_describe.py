"""``anymodal describe`` covers every registered name; ``anymodal config show`` prints the
resolved config with every default."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml

from anymodal.cli import main
from anymodal.cli.describe import KINDS, SECTIONS, describe
from anymodal.plugin_host.manager import get_plugin_manager
from anymodal.utils.docfields import args_section, config_options

REPO = Path(__file__).resolve().parents[2]


def _registered() -> list[tuple[str, str]]:
    manager = get_plugin_manager()
    return [(kind, name) for kind in KINDS for name in getattr(manager, kind).names()]


def test_every_registered_name_is_described_with_type_default_and_meaning(
        capsys: pytest.CaptureFixture[str]) -> None:
    registered = _registered()
    assert {kind for kind, _ in registered} >= {"modalities", "encoders", "objectives"}
    undocumented = []
    for kind, name in registered:
        [found] = [f for f in describe(name) if f["kind"] == KINDS[kind]]
        for option in found["options"]:
            assert option["type"], (name, option)
            if not option["meaning"]:
                undocumented.append(f"{name}.{option['name']}")
        assert main(["describe", name]) == 0
        assert name in capsys.readouterr().out
    assert not undocumented, f"options without an Args: entry: {undocumented}"


def test_every_config_key_is_described() -> None:
    described = {o["name"] for f in describe("config") for o in f["options"]}
    assert {"train.max_steps", "data.num_workers", "model.embed_dim", "optim.lr"} <= described
    assert not [o["name"] for o in describe("config")[0]["options"] if not o["meaning"]
                and o["name"] not in ("name", "modalities")]
    for section in SECTIONS[1:]:
        assert all(o["name"].startswith(section) for o in describe(section)[0]["options"])


def test_describe_json_gives_defaults_as_values(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["describe", "vector_mlp", "--json"]) == 0
    [found] = json.loads(capsys.readouterr().out)
    options = {o["name"]: o for o in found["options"]}
    assert found["kind"] == "encoder" and found["modality"] == "vector"
    assert options["width"]["default"] == 128 and options["width"]["type"] == "int"
    assert options["width"]["meaning"] == "output width."


def test_an_unknown_name_suggests_a_close_one(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["describe", "vectr"]) == 2
    assert "did you mean 'vector'?" in capsys.readouterr().err


def test_args_section_joins_continuation_lines_and_stops_at_the_next_section() -> None:
    doc = """Summary.

    Args:
        alpha: the first
            option, continued.
        beta (int): the second.

    Returns:
        gamma: not an option.
    """
    assert args_section(doc) == {"alpha": "the first option, continued.",
                                 "beta": "the second."}
    # "Args:" on the docstring's first line, as some config classes write it.
    assert args_section('Args:\n        width: output width.\n') == {"width": "output width."}


def test_an_inherited_field_is_documented_by_its_base_class() -> None:
    from dataclasses import dataclass

    @dataclass
    class Base:
        """Base.

        Args:
            model: the model id.
            pooling: how tokens are pooled.
        """

        model: str = ""
        pooling: str = "mean"

    @dataclass
    class Child(Base):
        """Child, CLS pooling by default.

        Args:
            pooling: ``cls`` here.
        """

        pooling: str = "cls"

    meanings = {o.name: o.meaning for o in config_options(Child)}
    assert meanings == {"model": "the model id.", "pooling": "``cls`` here."}


def test_config_options_expand_nested_dataclasses() -> None:
    from anymodal.config import ExperimentConfig

    names = [o.name for o in config_options(ExperimentConfig)]
    assert "data.train.kind" in names and "train.max_steps" in names


def test_config_show_fills_every_default(capsys: pytest.CaptureFixture[str]) -> None:
    recipe = REPO / "recipes" / "smoke_clip.yaml"
    assert main(["config", "show", str(recipe), "train.max_steps=7",
                 "modalities.a.params+={hidden: 16}"]) == 0
    shown = yaml.safe_load(capsys.readouterr().out)
    assert shown["train"]["max_steps"] == 7
    assert shown["optim"]["grad_clip"] == 1.0  # a schema default the recipe leaves out
    mod = shown["modalities"]["a"]
    assert mod["encoder"] == "vector_mlp" and mod["modality"] == "vector"
    assert mod["params"]["hidden"] == 16 and "depth" in mod["params"]  # encoder defaults
    assert "noise" in mod["options"] and "dim" in mod["options"]  # modality defaults
    assert mod["params"]["in_dim"] == mod["options"]["dim"]  # bound from the modality
    objective = get_plugin_manager().objectives.get(shown["objective"]["name"])
    assert set(shown["objective"]["params"]) == {
        o.name for o in config_options(objective.config_cls)}


def test_config_show_lists_every_typo_at_once(capsys: pytest.CaptureFixture[str]) -> None:
    recipe = REPO / "recipes" / "smoke_clip.yaml"
    assert main(["config", "show", str(recipe), "train.max_step=3", "data.batchsize=4",
                 "optim.lrr=1"]) == 2
    err = capsys.readouterr().err
    assert "3 unknown config keys" in err
    for typo, close in (("train.max_step", "max_steps"), ("data.batchsize", "batch_size"),
                        ("optim.lrr", "lr")):
        assert f"'{typo}'; did you mean '{close}'?" in err
