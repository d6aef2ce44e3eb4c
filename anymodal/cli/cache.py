"""``anymodal cache build|info RECIPE``: the sample cache a recipe's ``data.cache`` names."""

from __future__ import annotations

import argparse
from typing import Any

from anymodal.cli.output import Table, emit

__all__ = ["add_parsers", "cmd_cache"]


def add_parsers(sub: Any) -> None:
    """Add ``cache`` to the ``anymodal`` subparsers."""
    p = sub.add_parser("cache", help="fill or survey a recipe's sample cache (data.cache) "
                       "and feature cache (data.feature_cache)",
                       description="anymodal cache build RECIPE [key=value ...] [--workers N]: "
                       "decode every item of the recipe's manifests once into data.cache.dir "
                       "(resumable: entries already there are kept), and compute the frozen "
                       "encoders' features of data.feature_cache once. anymodal cache info "
                       "RECIPE: entries, size and hit rate per cached modality.")
    p.add_argument("action", choices=["build", "info"])
    p.add_argument("recipe", help="a YAML recipe with a data.cache section")
    p.add_argument("overrides", nargs="*", help="key=value (replace) or key+=value (merge)")
    p.add_argument("--workers", type=int, default=1, help="processes decoding rows (build)")
    p.add_argument("--no-progress", action="store_true", help="no progress bar (build)")
    p.add_argument("--json", action="store_true", help="machine-readable output")
    p.set_defaults(func=cmd_cache)


def cmd_cache(args: argparse.Namespace) -> int:
    """Build the cache, or print what it holds."""
    from anymodal.cli.feature_cache import feature_cache_report
    from anymodal.config import load_config
    from anymodal.data.cache_build import build_cache, survey_cache

    config = load_config(args.recipe, args.overrides)
    feature_data, feature_tables = feature_cache_report(config, args)  # data.feature_cache
    if feature_tables and config.data.get("cache") is None:
        emit(feature_data, feature_tables, args.json)
        return 0
    counts = None
    if args.action == "build":
        counts = build_cache(config, workers=max(1, args.workers),
                             progress=not args.no_progress)
    survey = survey_cache(config)
    rows = [[key, survey.items[key], survey.hits[key],
             f"{survey.hits[key] / max(1, survey.items[key]):.1%}", survey.entries[key],
             f"{survey.bytes[key] / 2**20:.1f}", survey.stale_entries[key]]
            for key in survey.items]
    data = {key: {"items": survey.items[key], "hits": survey.hits[key],
                  "entries": survey.entries[key], "bytes": survey.bytes[key],
                  "stale_entries": survey.stale_entries[key],
                  "stale_bytes": survey.stale_bytes[key]} for key in survey.items}
    tables = [Table(f"sample cache {config.data.cache.dir}",
                    ["modality", "items", "hits", "hit rate", "entries", "MiB", "stale"], rows)]
    if counts is not None:
        tables.insert(0, Table("sample cache build", ["rows", "bad rows"],
                               [[counts["rows"], counts["bad_rows"]]]))
    emit({"modalities": data, **({"build": counts} if counts else {}), **feature_data},
         tables + feature_tables, args.json)
    return 0
