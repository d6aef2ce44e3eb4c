"""``anymodal search``: rank an index's rows (or tuples of several indexes) for queries."""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

from anymodal.cli.items import load_model
from anymodal.cli.output import Table, print_json, print_table
from anymodal.errors import ConfigError, DataError

__all__ = ["add_parsers", "cmd_search"]


def add_parsers(sub: Any) -> None:
    """Add ``search`` to the ``anymodal`` subparsers."""
    p = sub.add_parser(
        "search", help="search an index with one or more query modalities",
        description="Rank an index's rows for a query of one or more modalities with the "
        "model's objective. With several indexes, rank tuples (Symile tuple search).")
    p.add_argument("model", help="a model folder")
    p.add_argument("indexes", nargs="+", metavar="INDEX",
                   help="an index folder; several give a tuple search (Symile)")
    p.add_argument("--query", "-q", action="append", default=[], metavar="MODALITY=ITEM",
                   help="a query item, e.g. audio=clip.wav (repeat for more modalities)")
    p.add_argument("--queries", help="a manifest: one query per row (batch search)")
    p.add_argument("--query-columns", default=None,
                   help="the manifest columns that form a query (default: the model's "
                   "modalities found in each row, other than the index's)")
    p.add_argument("-k", type=int, default=10, help="hits per query")
    p.add_argument("--rerank", type=int, default=10,
                   help="FAISS candidates per hit for rules FAISS cannot rank (GRAM)")
    p.add_argument("--json", action="store_true", help="machine-readable output")
    p.set_defaults(func=cmd_search)


def _manifest_queries(args: argparse.Namespace, model: Any, target: str
                      ) -> tuple[list[dict[str, Any]], list[str]]:
    from anymodal.data.manifest import read_manifest_rows
    from anymodal.data.rows import resolve_source
    from anymodal.data.sources import path_rule

    base = Path(args.queries).parent
    wanted = ([c.strip() for c in args.query_columns.split(",")] if args.query_columns
              else None)
    queries, names = [], []
    for number, row in enumerate(read_manifest_rows(args.queries)):
        keys = wanted or [m for m in model.modalities if m != target and row.get(m) is not None]
        query = {k: resolve_source(row[k], base, is_path=path_rule(model.modalities[k].load))
                 for k in keys if row.get(k) is not None}  # a text query stays text
        if query:
            queries.append(query)
            names.append(str(row.get("id", number)))
    if not queries:
        raise DataError(args.queries, "no row holds a query")
    return queries, names


def _queries(args: argparse.Namespace, model: Any, target: str
             ) -> tuple[list[dict[str, Any]], list[str]]:
    """``(queries, names)`` from ``--query key=value`` pairs or a ``--queries`` manifest."""
    if args.queries:
        return _manifest_queries(args, model, target)
    if not args.query:
        raise ConfigError("give --query MODALITY=ITEM (repeatable) or --queries MANIFEST")
    query = {}
    for item in args.query:
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise ConfigError(f"--query {item!r} must look like MODALITY=ITEM")
        query[key.strip()] = value
    return [query], ["query"]


def cmd_search(args: argparse.Namespace) -> int:
    """Search and print one table of hits per query (or JSON)."""
    from anymodal.retrieval.index import Index
    from anymodal.retrieval.search import search, search_tuples

    model = load_model(args.model)
    indexes = [Index.load(path, model=model) for path in args.indexes]
    queries, names = _queries(args, model, indexes[0].modality)
    tuples = len(indexes) > 1
    results: list[Any] = (search_tuples(model, queries, indexes, args.k) if tuples
                          else search(model, queries, indexes[0], args.k, rerank=args.rerank))
    if args.json:
        print_json([{"query": name, "items": {k: str(v) for k, v in q.items()},
                     "hits": [hit._asdict() for hit in hits]}
                    for name, q, hits in zip(names, queries, results)])
        return 0
    target = " x ".join(ix.modality for ix in indexes)
    for name, query, hits in zip(names, queries, results):
        rows = [[rank, " | ".join(h.ids) if tuples else h.id, h.score,
                 json.dumps(h.payloads if tuples else h.payload, default=str)]
                for rank, h in enumerate(hits, start=1)]
        described = ", ".join(f"{k}={v}" for k, v in query.items())
        print_table(Table(f"{name}: {described} -> {target}", ["rank", "id", "score", "payload"],
                          rows, key_columns=2))
    return 0
