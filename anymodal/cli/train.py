"""``anymodal train RECIPE [key=value ...]``: train from a YAML recipe."""

from __future__ import annotations

import argparse
from typing import Any

__all__ = ["OVERRIDE_RULE", "add_parsers", "cmd_train"]

OVERRIDE_RULE = (
    "Overrides are key=value pairs (train.max_steps=100 data.batch_size=64). A value given "
    "for a key replaces it whole: 'modalities.text={encoder: text_minilm, freeze: true}' "
    "drops the recipe's other keys under modalities.text. To merge a mapping into the "
    "recipe's instead, write key+=VALUE ('modalities.text.params+={width: 64}').")


def add_parsers(sub: Any) -> None:
    """Add ``train`` to the ``anymodal`` subparsers."""
    p = sub.add_parser("train", help="train from a YAML recipe (also under accelerate launch)",
                       description="Train from a recipe. " + OVERRIDE_RULE + " 'anymodal "
                       "config show RECIPE [overrides]' prints the resolved config first.")
    p.add_argument("recipe", help="path to a YAML recipe (see recipes/)")
    p.add_argument("overrides", nargs="*", help="key=value (replace) or key+=value (merge)")
    p.set_defaults(func=cmd_train)


def cmd_train(args: argparse.Namespace) -> int:
    """Train; the run's summary is printed by the training loop.

    Returns 130 when a signal (SIGINT/SIGTERM) stopped the run after its checkpoint.
    """
    from anymodal.training import train_from_recipe

    result = train_from_recipe(args.recipe, args.overrides)
    return 130 if result.stopped else 0
