"""What the retrieval commands do (``anymodal embed|index|search|eval|report``).

The parsers are in :mod:`anymodal.retrieval.commands`; this module is imported only when a
command runs. Output is a rich table, or JSON with ``--json``.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

from anymodal.errors import ConfigError, DataError

__all__ = ["cmd_embed", "cmd_eval", "cmd_index_add", "cmd_index_build", "cmd_index_info",
           "cmd_index_remove", "cmd_report", "cmd_search"]


def _print_table(title: str, columns: list[str], rows: list[list[Any]]) -> None:
    from rich.console import Console
    from rich.table import Table

    table = Table(title=title)
    for column in columns:
        table.add_column(column, overflow="fold")
    for row in rows:
        table.add_row(*(f"{v:.4f}" if isinstance(v, float) else str(v) for v in row))
    Console().print(table)


def _load_model(path: str) -> Any:
    from anymodal.model import load_model

    return load_model(path)


def _items(args: argparse.Namespace, modality: str
           ) -> tuple[list[Any], list[str] | None, list[Any] | None]:
    """``(items, ids, payloads)`` from ``--data`` (a manifest column) or the command line."""
    if args.data:
        from anymodal.data.manifest import read_manifest_rows
        from anymodal.data.rows import resolve_source

        column = args.column or modality
        extra = [c.strip() for c in args.payload_columns.split(",") if c.strip()]
        base = Path(args.data).parent
        items, ids, payloads = [], [], []
        for number, row in enumerate(read_manifest_rows(args.data)):
            value = row.get(column)
            if value is None:
                continue
            items.append(resolve_source(value, base))
            ids.append(str(row.get(args.id_column, number)))
            payloads.append({"source": value, **{c: row.get(c) for c in extra}} if extra
                            else value)
        if not items:
            raise DataError(args.data, f"no row has a value in column {column!r}")
        return items, ids, payloads
    if not args.items:
        raise ConfigError("give the items on the command line, or --data MANIFEST")
    return list(args.items), None, None


def _report_failures(failures: list[tuple[int, str]]) -> None:
    for index, reason in failures[:20]:
        print(f"skipped item {index}: {reason}", file=sys.stderr)
    if len(failures) > 20:
        print(f"... and {len(failures) - 20} more skipped items", file=sys.stderr)


def cmd_embed(args: argparse.Namespace) -> int:
    from safetensors.torch import save_file

    from anymodal.model.embed import embed_items

    model = _load_model(args.model)
    items, ids, _ = _items(args, args.modality)
    ids = ids or [str(i) for i in range(len(items))]
    failures: list[tuple[int, str]] = []
    embeddings = embed_items(model, args.modality, items, args.batch_size,
                             not args.no_progress, args.on_error, failures)
    bad = {i for i, _ in failures}
    kept = [row_id for i, row_id in enumerate(ids) if i not in bad]
    output = Path(args.output)
    output.parent.mkdir(parents=True, exist_ok=True)
    save_file({"embeddings": embeddings.contiguous()}, str(output),
              metadata={"modality": args.modality, "fingerprint": model.fingerprint(),
                        "ids": json.dumps(kept)})
    _report_failures(failures)
    summary = {"output": str(output), "rows": len(kept), "dim": int(embeddings.shape[1]),
               "skipped": [{"item": i, "reason": r} for i, r in failures]}
    if args.json:
        print(json.dumps(summary, indent=2))
    else:
        print(f"wrote {len(kept)} embeddings of {args.modality!r} "
              f"(dim {embeddings.shape[1]}) to {output}")
    return 0


def _index_summary(index: Any, path: Path, as_json: bool, verb: str) -> None:
    info = {"path": str(path), **index.info()}
    if as_json:
        print(json.dumps(info, indent=2))
    else:
        print(f"{verb} {path}: {info['rows']} rows of {info['modality']!r}, dim "
              f"{info['dim']}, backend {info['backend']}")


def cmd_index_build(args: argparse.Namespace) -> int:
    from anymodal.retrieval.index import Index

    model = _load_model(args.model)
    items, ids, payloads = _items(args, args.modality)
    failures: list[tuple[int, str]] = []
    options = {"nprobe": args.nprobe, "hnsw_m": args.hnsw_m, "ef_search": args.ef_search}
    if args.nlist:
        options["nlist"] = args.nlist
    index = Index.build(model, args.modality, items, ids, payloads, batch_size=args.batch_size,
                        progress=not args.no_progress, on_error=args.on_error,
                        failures=failures, backend=args.backend, **options)
    path = index.save(args.output)
    _report_failures(failures)
    _index_summary(index, path, args.json, "wrote")
    return 0


def cmd_index_add(args: argparse.Namespace) -> int:
    from anymodal.retrieval.index import Index

    model = _load_model(args.model)
    index = Index.load(args.index, model=model)
    if args.modality and args.modality != index.modality:
        raise ConfigError(f"the index holds {index.modality!r}, not {args.modality!r}")
    items, ids, payloads = _items(args, index.modality)
    failures: list[tuple[int, str]] = []
    added = index.add(model, items, ids, payloads, batch_size=args.batch_size,
                      progress=not args.no_progress, on_error=args.on_error, failures=failures)
    path = index.save(args.index)
    _report_failures(failures)
    _index_summary(index, path, args.json, f"added {added} rows;")
    return 0


def cmd_index_remove(args: argparse.Namespace) -> int:
    from anymodal.retrieval.index import Index

    index = Index.load(args.index)
    try:
        removed = index.remove(args.ids)
    except KeyError as exc:
        raise ConfigError(f"{args.index}: {exc.args[0]}") from None
    index.save(args.index)
    print(f"removed {removed} rows; {len(index)} left in {args.index}")
    return 0


def cmd_index_info(args: argparse.Namespace) -> int:
    from anymodal.retrieval.index import Index

    index = Index.load(args.index)
    info = {"path": args.index, **index.info(),
            "ids_sample": index.ids[:5]}
    if args.json:
        print(json.dumps(info, indent=2))
        return 0
    _print_table(f"index {args.index}", ["key", "value"],
                 [[k, json.dumps(v) if isinstance(v, (dict, list)) else v]
                  for k, v in info.items()])
    return 0


def _queries(args: argparse.Namespace, model: Any, target: str
             ) -> tuple[list[dict[str, Any]], list[str]]:
    """``(queries, names)`` from ``--query key=value`` pairs or a ``--queries`` manifest."""
    if args.queries:
        from anymodal.data.manifest import read_manifest_rows
        from anymodal.data.rows import resolve_source

        base = Path(args.queries).parent
        wanted = ([c.strip() for c in args.query_columns.split(",")] if args.query_columns
                  else None)
        queries, names = [], []
        for number, row in enumerate(read_manifest_rows(args.queries)):
            keys = wanted or [m for m in model.modalities
                              if m != target and row.get(m) is not None]
            query = {k: resolve_source(row[k], base) for k in keys if row.get(k) is not None}
            if query:
                queries.append(query)
                names.append(str(row.get("id", number)))
        if not queries:
            raise DataError(args.queries, "no row holds a query")
        return queries, names
    if not args.query:
        raise ConfigError("give --query MODALITY=ITEM (repeatable) or --queries MANIFEST")
    query = {}
    for item in args.query:
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise ConfigError(f"--query {item!r} must look like MODALITY=ITEM")
        query[key.strip()] = value
    return [query], ["query"]


def _describe(query: dict[str, Any]) -> str:
    return ", ".join(f"{k}={v}" for k, v in query.items())


def cmd_search(args: argparse.Namespace) -> int:
    from anymodal.retrieval.index import Index
    from anymodal.retrieval.search import search, search_tuples

    model = _load_model(args.model)
    indexes = [Index.load(path, model=model) for path in args.indexes]
    queries, names = _queries(args, model, indexes[0].modality)
    if len(indexes) == 1:
        results: list[Any] = search(model, queries, indexes[0], args.k, rerank=args.rerank)
    else:
        results = search_tuples(model, queries, indexes, args.k)
    if args.json:
        out = [{"query": name, "items": {k: str(v) for k, v in q.items()},
                "hits": [hit._asdict() for hit in hits]}
               for name, q, hits in zip(names, queries, results)]
        print(json.dumps(out, indent=2, default=str))
        return 0
    for name, query, hits in zip(names, queries, results):
        rows = [[rank, " | ".join(h.ids) if len(indexes) > 1 else h.id, h.score,
                 json.dumps(h.payloads if len(indexes) > 1 else h.payload, default=str)]
                for rank, h in enumerate(hits, start=1)]
        _print_table(f"{name}: {_describe(query)} -> "
                     f"{' x '.join(ix.modality for ix in indexes)}",
                     ["rank", "id", "score", "payload"], rows)
    return 0


def cmd_eval(args: argparse.Namespace) -> int:
    from anymodal.retrieval.evaluation import (
        EmbeddedManifest,
        evaluate_retrieval,
        parse_tasks,
        read_classes,
        zero_shot,
    )

    if not (args.tasks or args.classes or args.prototypes):
        raise ConfigError("nothing to evaluate: give --tasks, --classes or --prototypes")
    model = _load_model(args.model)
    data = EmbeddedManifest(model, args.data, args.batch_size, label_key=args.label_column)
    ks = [int(k) for k in args.ks.split(",") if k.strip()]
    out: dict[str, Any] = {"model": args.model, "data": args.data}
    if args.tasks:
        tasks = parse_tasks(args.tasks, model.modalities)
        out["retrieval"] = evaluate_retrieval(model, data, tasks, ks, args.positives)
    if args.classes or args.prototypes:
        proto = (EmbeddedManifest(model, args.prototype_data, args.batch_size,
                                  label_key=args.label_column) if args.prototype_data else None)
        mods = ([m.strip() for m in args.zero_shot_modalities.split(",")]
                if args.zero_shot_modalities else None)
        out["zero_shot"] = zero_shot(
            model, data, classes=read_classes(args.classes) if args.classes else None,
            template=args.template, class_modality=args.class_modality,
            prototypes=args.prototypes, prototype_data=proto, modalities=mods)
    out["skipped_items"] = data.failures
    if args.json:
        print(json.dumps(out, indent=2))
        return 0
    if "retrieval" in out:
        columns = [f"R@{k}" for k in ks] + ["median_rank", "MRR", "mAP", "queries",
                                            "candidates"]
        _print_table(f"retrieval on {args.data}", ["task", *columns],
                     [[task, *(m[c] if c not in ("queries", "candidates") else int(m[c])
                               for c in columns)] for task, m in out["retrieval"].items()])
    if "zero_shot" in out:
        _print_table("zero-shot classification", ["modality", "top1", "top5", "items",
                                                  "classes"],
                     [[m, r["top1"], r["top5"], int(r["items"]), int(r["classes"])]
                      for m, r in out["zero_shot"].items()])
    for failure in data.failures[:20]:
        print(f"skipped {failure['modality']} item {failure['source']}: {failure['reason']}",
              file=sys.stderr)
    return 0


def cmd_report(args: argparse.Namespace) -> int:
    from anymodal.retrieval.report import write_report

    report = write_report(args.run_dir, args.output, args.data, args.n)
    m = report.measures
    if args.json:
        print(json.dumps({"png": str(report.png), "html": str(report.html), **m}, indent=2))
        return 0
    _print_table("alignment (per pair; lower is better) and modality gap",
                 ["pair", "alignment", "centroid distance"],
                 [[pair, value, m["modality_gap"][pair]] for pair, value in m["alignment"].items()])
    _print_table("uniformity (per modality; lower is better)", ["modality", "uniformity"],
                 [[name, value] for name, value in m["uniformity"].items()])
    print(f"wrote {report.png}\n      {report.html}\n      {report.json}")
    return 0
