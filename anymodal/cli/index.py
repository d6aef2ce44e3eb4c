"""``anymodal embed`` and ``anymodal index build|add|remove|info``: items to vectors."""

from __future__ import annotations

import argparse
import json
import os
from pathlib import Path
from typing import Any

from anymodal.cli.items import add_item_arguments, load_model, read_items, report_failures
from anymodal.cli.output import Table, emit, print_json
from anymodal.errors import ConfigError

__all__ = ["add_parsers", "cmd_embed", "cmd_index_add", "cmd_index_build", "cmd_index_info",
           "cmd_index_remove", "cmd_index_tune"]


def add_parsers(sub: Any) -> None:
    """Add ``embed`` and ``index`` to the ``anymodal`` subparsers."""
    p = sub.add_parser("embed", help="embed raw items with a trained model",
                       description="Embed items of one modality; writes a safetensors file "
                       "with 'embeddings' [N, D] and the ids in its metadata.")
    p.add_argument("model", help="a model folder (train output_dir/model)")
    p.add_argument("--modality", "-m", required=True, help="the model's modality key")
    p.add_argument("--output", "-o", required=True, help="the .safetensors file to write")
    p.add_argument("--json", action="store_true", help="machine-readable summary")
    add_item_arguments(p)
    p.set_defaults(func=cmd_embed)
    p = sub.add_parser("index", help="build, extend or inspect an index")
    actions = p.add_subparsers(dest="action", metavar="ACTION", required=True)
    _add_build(actions)
    a = actions.add_parser("add", help="embed items and append them to an index")
    a.add_argument("index", help="the index folder")
    a.add_argument("model", help="the model folder that built the index")
    a.add_argument("--modality", "-m", default=None, help="(default: the index's modality)")
    a.add_argument("--json", action="store_true", help="machine-readable summary")
    add_item_arguments(a)
    a.set_defaults(func=cmd_index_add)
    r = actions.add_parser("remove", help="delete rows by id")
    r.add_argument("index", help="the index folder")
    r.add_argument("ids", nargs="+", help="ids to delete")
    r.set_defaults(func=cmd_index_remove)
    i = actions.add_parser("info", help="describe an index (verifies its checksums)")
    i.add_argument("index", help="the index folder")
    i.add_argument("--json", action="store_true", help="machine-readable output")
    i.set_defaults(func=cmd_index_info)
    t = actions.add_parser("tune", help="choose nprobe/efSearch for a recall target",
                           description="Sweep the index's search setting on held-out query "
                           "embeddings (an 'anymodal embed' file) against the exact answer; "
                           "store the fastest setting that reaches the target in the index.")
    t.add_argument("index", help="the index folder (rewritten with the chosen setting)")
    t.add_argument("--queries", required=True, help="held-out query embeddings (.safetensors)")
    t.add_argument("--target", type=float, default=0.95, help="recall@k to reach")
    t.add_argument("-k", type=int, default=10, help="the k of recall@k")
    t.add_argument("--json", action="store_true", help="machine-readable output")
    t.set_defaults(func=cmd_index_tune)


def _add_build(actions: Any) -> None:
    b = actions.add_parser("build", help="embed items and write a new index")
    b.add_argument("model", help="a model folder")
    b.add_argument("--modality", "-m", required=True, help="the model's modality key")
    b.add_argument("--output", "-o", required=True, help="the index folder to write")
    b.add_argument("--backend", choices=("exact", "flat", "ivf", "hnsw", "ivfpq"),
                   default="exact", help="exact chunked torch search, or a FAISS index")
    b.add_argument("--nlist", type=int, default=None, help="IVF cells")
    b.add_argument("--nprobe", type=int, default=16, help="IVF cells visited per query")
    b.add_argument("--hnsw-m", type=int, default=32, help="HNSW links per node")
    b.add_argument("--ef-search", type=int, default=64, help="HNSW search list")
    b.add_argument("--shards", default=None, metavar="DIR",
                   help="embed in resumable shards kept in DIR (the default under "
                   "'accelerate launch' with several processes: OUTPUT.shards)")
    b.add_argument("--shard-size", type=int, default=None,
                   help="items per shard, a multiple of --batch-size (default 16 batches)")
    b.add_argument("--json", action="store_true", help="machine-readable summary")
    add_item_arguments(b)
    b.set_defaults(func=cmd_index_build)


def cmd_embed(args: argparse.Namespace) -> int:
    """Embed the items and write them with their ids to a safetensors file."""
    from safetensors.torch import save_file

    from anymodal.model.embed import embed_items

    model = load_model(args.model)
    items, ids, _ = read_items(args, args.modality)
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
    report_failures(failures)
    summary = {"output": str(output), "rows": len(kept), "dim": int(embeddings.shape[1]),
               "skipped": [{"item": i, "reason": r} for i, r in failures]}
    if args.json:
        print_json(summary)
    else:
        print(f"wrote {len(kept)} embeddings of {args.modality!r} "
              f"(dim {embeddings.shape[1]}) to {output}")
    return 0


def _index_summary(index: Any, path: Path, as_json: bool, verb: str) -> None:
    info = {"path": str(path), **index.info()}
    if as_json:
        print_json(info)
    else:
        print(f"{verb} {path}: {info['rows']} rows of {info['modality']!r}, dim "
              f"{info['dim']}, backend {info['backend']}")


def cmd_index_build(args: argparse.Namespace) -> int:
    """Embed the items into a new index folder."""
    from anymodal.retrieval.index import Index

    model = load_model(args.model)
    items, ids, payloads = read_items(args, args.modality)
    failures: list[tuple[int, str]] = []
    options = {"nprobe": args.nprobe, "hnsw_m": args.hnsw_m, "ef_search": args.ef_search}
    if args.nlist:
        options["nlist"] = args.nlist
    if args.shards or int(os.environ.get("WORLD_SIZE", "1")) > 1:
        from anymodal.retrieval.distributed import build_index_distributed

        built = build_index_distributed(
            model, args.modality, items, args.output, ids, payloads, work_dir=args.shards,
            shard_size=args.shard_size, batch_size=args.batch_size,
            progress=not args.no_progress, on_error=args.on_error, failures=failures,
            backend=args.backend, **options)
        if built is not None:  # the main process merged and saved it
            report_failures(failures)
            _index_summary(built, Path(args.output), args.json, "wrote")
        return 0
    index = Index.build(model, args.modality, items, ids, payloads, batch_size=args.batch_size,
                        progress=not args.no_progress, on_error=args.on_error,
                        failures=failures, backend=args.backend, **options)
    path = index.save(args.output)
    report_failures(failures)
    _index_summary(index, path, args.json, "wrote")
    return 0


def cmd_index_add(args: argparse.Namespace) -> int:
    """Embed the items and append them to an index."""
    from anymodal.retrieval.index import Index

    model = load_model(args.model)
    index = Index.load(args.index, model=model)
    if args.modality and args.modality != index.modality:
        raise ConfigError(f"the index holds {index.modality!r}, not {args.modality!r}")
    items, ids, payloads = read_items(args, index.modality)
    failures: list[tuple[int, str]] = []
    added = index.add(model, items, ids, payloads, batch_size=args.batch_size,
                      progress=not args.no_progress, on_error=args.on_error, failures=failures)
    path = index.save(args.index)
    report_failures(failures)
    _index_summary(index, path, args.json, f"added {added} rows;")
    return 0


def cmd_index_remove(args: argparse.Namespace) -> int:
    """Delete rows by id."""
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
    """Describe an index (loading it verifies its checksums)."""
    from anymodal.retrieval.index import Index

    index = Index.load(args.index)
    info = {"path": args.index, **index.info(), "ids_sample": index.ids[:5]}
    rows = [[k, json.dumps(v) if isinstance(v, (dict, list)) else v] for k, v in info.items()]
    emit(info, [Table(f"index {args.index}", ["key", "value"], rows)], args.json)
    return 0


def cmd_index_tune(args: argparse.Namespace) -> int:
    """Tune the index's search setting to ``--target`` on held-out query embeddings."""
    from safetensors import SafetensorError
    from safetensors.torch import load_file

    from anymodal.retrieval.index import Index

    index = Index.load(args.index)
    try:
        queries = load_file(args.queries).get("embeddings")
    except (OSError, SafetensorError) as exc:
        raise ConfigError(f"--queries {args.queries}: not a readable safetensors file "
                          f"({exc})") from None
    if queries is None:
        raise ConfigError(f"--queries {args.queries}: no 'embeddings' tensor (write it with "
                          "anymodal embed)")
    result = index.tune(queries, target_recall=args.target, k=args.k)
    index.save(args.index)
    if args.json:
        print_json(result.to_dict())
        return 0
    setting = ", ".join(f"{k}={v}" for k, v in result.settings.items()) or "nothing to tune"
    print(f"{args.index}: {setting}: recall@{result.k} {result.recall:.3f} "
          f"({'reaches' if result.reached else 'BELOW'} {result.target_recall}), "
          f"{result.qps:,.0f} queries/s, {result.speedup:.1f}x exact, on {result.queries} "
          "queries")
    return 0
