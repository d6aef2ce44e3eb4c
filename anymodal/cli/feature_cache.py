"""``anymodal cache build|info RECIPE`` for the frozen-feature cache (``data.feature_cache``)."""

from __future__ import annotations

import argparse
from typing import Any

from omegaconf import DictConfig

from anymodal.cli.output import Table

__all__ = ["feature_cache_report"]


def feature_cache_report(config: DictConfig, args: argparse.Namespace
                         ) -> tuple[dict[str, Any], list[Table]]:
    """Build the feature cache when asked, then survey it: ``(JSON data, tables)``.

    Returns empty ones when the recipe has no ``data.feature_cache``.

    Args:
        config: the recipe.
        args: ``action`` (``build`` or ``info``), ``workers``, ``no_progress``.
    """
    if config.data.get("feature_cache") is None:
        return {}, []
    from accelerate.utils import set_seed

    from anymodal.data.feature_build import build_feature_cache, survey_feature_cache
    from anymodal.model import MultiModalModel

    # seeded as training seeds it: a frozen encoder initialised at random (no pretrained
    # weights) then has the weights, hence the namespace, that training will have
    set_seed(int(config.train.seed))
    model = MultiModalModel(config)
    counts = None
    if args.action == "build":
        counts = build_feature_cache(model, config, workers=max(0, args.workers - 1),
                                     progress=not args.no_progress)
    survey = survey_feature_cache(model, config)
    rows = [[key, survey.items[key], survey.hits[key],
             f"{survey.hits[key] / max(1, survey.items[key]):.1%}", survey.entries[key],
             f"{survey.bytes[key] / 2**20:.1f}", survey.stale_entries[key]]
            for key in survey.items]
    data: dict[str, Any] = {"features": {key: {
        "items": survey.items[key], "hits": survey.hits[key], "entries": survey.entries[key],
        "bytes": survey.bytes[key], "stale_entries": survey.stale_entries[key],
        "stale_bytes": survey.stale_bytes[key]} for key in survey.items}}
    tables = [Table(f"feature cache {config.data.feature_cache.dir}",
                    ["modality", "items", "hits", "hit rate", "entries", "MiB", "stale"], rows)]
    if counts is not None:
        data["feature_build"] = counts
        tables.insert(0, Table("feature cache build", ["rows", "bad rows", "stored before",
                                                       "computed"],
                               [[counts["rows"], counts["bad_rows"], counts["hits"],
                                 counts["computed"]]]))
    return data, tables
