"""Recipes and plugins together: every shipped recipe validates with the first-party plugins.

(Moved from ``tests/core/test_config.py``: the recipes name the image, audio, text...
modalities, which the core suite, run without plugins, does not have.)
"""

from __future__ import annotations

from pathlib import Path

from anymodal.config import load_config


def test_shipped_recipes_validate() -> None:
    recipes = sorted((Path(__file__).parents[2] / "recipes").glob("*.yaml"))
    assert recipes
    for path in recipes:
        load_config(path)
