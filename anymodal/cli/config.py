"""``anymodal config show RECIPE [overrides]``: the fully resolved config, every default.

The recipe is loaded as ``anymodal train`` loads it (schema <- YAML <- overrides, validated),
then each modality's options, each encoder's params and the objective's params are
completed with their defaults, so that nothing the run will use is left implicit.
"""

from __future__ import annotations

import argparse
import dataclasses
from typing import Any

from anymodal.cli.output import print_json
from anymodal.cli.train import OVERRIDE_RULE

__all__ = ["add_parsers", "cmd_config_show", "resolved_config"]


def add_parsers(sub: Any) -> None:
    """Add ``config`` to the ``anymodal`` subparsers."""
    p = sub.add_parser("config", help="show a recipe fully resolved, with every default")
    actions = p.add_subparsers(dest="action", metavar="ACTION", required=True)
    s = actions.add_parser(
        "show", help="print the resolved config (YAML, or --json)",
        description="Print RECIPE with the overrides applied and every default filled in: "
        "the experiment's keys, each modality's options, each encoder's params and the "
        "objective's params. " + OVERRIDE_RULE)
    s.add_argument("recipe", help="a YAML recipe; '-' for the defaults alone")
    s.add_argument("overrides", nargs="*", help="key=value (replace) or key+=value (merge)")
    s.add_argument("--json", action="store_true", help="JSON instead of YAML")
    s.set_defaults(func=cmd_config_show)


def _with_defaults(config_cls: type | None, values: dict[str, Any], what: str
                   ) -> dict[str, Any]:
    from anymodal.utils.params import build_params

    built = build_params(config_cls, values, what)
    return dataclasses.asdict(built) if built is not None else {}


def resolved_config(config: Any) -> dict[str, Any]:
    """The validated config as a plain dict with every plugin default filled in.

    Args:
        config: a config from :func:`anymodal.load_config` (validated).
    """
    from omegaconf import OmegaConf

    from anymodal.authoring import bind_encoder_params
    from anymodal.plugin_host.manager import get_modality, get_plugin_manager

    manager = get_plugin_manager()
    data: dict[str, Any] = OmegaConf.to_container(config, resolve=True)  # type: ignore[assignment]
    for key, mod in data["modalities"].items():
        mod["modality"] = kind = mod["modality"] or key
        spec = manager.modalities.get(kind)
        mod["options"] = _with_defaults(spec.config_cls, mod["options"], f"modality {kind!r}")
        mod["encoder"] = encoder = mod["encoder"] or spec.default_encoder
        enc = manager.encoders.get(encoder)
        # The params an encoder takes from its modality's options are shown as it gets them.
        params = bind_encoder_params(enc, get_modality(kind, **mod["options"]), mod["params"])
        mod["params"] = _with_defaults(enc.config_cls, params, f"encoder {encoder!r}")
    objective = data["objective"]
    objective["params"] = _with_defaults(manager.objectives.get(objective["name"]).config_cls,
                                         objective["params"], f"objective {objective['name']!r}")
    return data


def cmd_config_show(args: argparse.Namespace) -> int:
    """Load, validate and print the recipe resolved."""
    from omegaconf import OmegaConf

    from anymodal.config import load_config

    config = load_config(None if args.recipe == "-" else args.recipe, args.overrides)
    data = resolved_config(config)
    if args.json:
        print_json(data)
    else:
        print(OmegaConf.to_yaml(OmegaConf.create(data)), end="")
    return 0
