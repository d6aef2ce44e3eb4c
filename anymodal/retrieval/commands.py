"""The retrieval commands of the CLI: ``embed``, ``index``, ``search``, ``eval``, ``report``.

Only argparse is imported here; each command imports what it needs when it runs (the
implementations are in :mod:`anymodal.retrieval.cli_run`).
"""

from __future__ import annotations

import argparse
from typing import Any

__all__ = ["add_retrieval_commands"]


def _run(name: str) -> Any:
    """A command function that imports its implementation only when it runs."""

    def command(args: argparse.Namespace) -> int:
        from anymodal.retrieval import cli_run

        return int(getattr(cli_run, name)(args) or 0)

    command.__name__ = name
    return command


def _items_arguments(p: argparse.ArgumentParser) -> None:
    """Where the items come from: a manifest column, or items on the command line."""
    p.add_argument("items", nargs="*",
                   help="items (paths or inline values), if no --data; right after MODEL")
    p.add_argument("--data", help="a manifest (.jsonl/.csv); items are its --column")
    p.add_argument("--column", help="the manifest column of the items (default: --modality)")
    p.add_argument("--id-column", default="id",
                   help="manifest column of ids (default 'id'; else the row number)")
    p.add_argument("--payload-columns", default="",
                   help="comma-separated manifest columns kept as each row's payload")
    p.add_argument("--batch-size", type=int, default=64, help="items embedded at once")
    p.add_argument("--on-error", choices=("raise", "skip"), default="raise",
                   help="a bad item stops (raise) or is left out and reported (skip)")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")


def _add_embed(sub: Any) -> None:
    p = sub.add_parser("embed", help="embed raw items with a trained model",
                       description="Embed items of one modality; writes a safetensors file "
                       "with 'embeddings' [N, D] and the ids in its metadata.")
    p.add_argument("model", help="a model folder (train output_dir/model)")
    p.add_argument("--modality", "-m", required=True, help="the model's modality key")
    p.add_argument("--output", "-o", required=True, help="the .safetensors file to write")
    p.add_argument("--json", action="store_true", help="machine-readable summary")
    _items_arguments(p)
    p.set_defaults(func=_run("cmd_embed"))


def _add_index(sub: Any) -> None:
    p = sub.add_parser("index", help="build, extend or inspect an index")
    actions = p.add_subparsers(dest="action", metavar="ACTION", required=True)
    b = actions.add_parser("build", help="embed items and write a new index")
    b.add_argument("model", help="a model folder")
    b.add_argument("--modality", "-m", required=True, help="the model's modality key")
    b.add_argument("--output", "-o", required=True, help="the index folder to write")
    b.add_argument("--backend", choices=("exact", "flat", "ivf", "hnsw"), default="exact",
                   help="exact chunked torch search, or a FAISS index")
    b.add_argument("--nlist", type=int, default=None, help="IVF cells")
    b.add_argument("--nprobe", type=int, default=16, help="IVF cells visited per query")
    b.add_argument("--hnsw-m", type=int, default=32, help="HNSW links per node")
    b.add_argument("--ef-search", type=int, default=64, help="HNSW search list")
    b.add_argument("--json", action="store_true", help="machine-readable summary")
    _items_arguments(b)
    b.set_defaults(func=_run("cmd_index_build"))
    a = actions.add_parser("add", help="embed items and append them to an index")
    a.add_argument("index", help="the index folder")
    a.add_argument("model", help="the model folder that built the index")
    a.add_argument("--modality", "-m", default=None, help="(default: the index's modality)")
    a.add_argument("--json", action="store_true", help="machine-readable summary")
    _items_arguments(a)
    a.set_defaults(func=_run("cmd_index_add"))
    r = actions.add_parser("remove", help="delete rows by id")
    r.add_argument("index", help="the index folder")
    r.add_argument("ids", nargs="+", help="ids to delete")
    r.set_defaults(func=_run("cmd_index_remove"))
    i = actions.add_parser("info", help="describe an index (verifies its checksums)")
    i.add_argument("index", help="the index folder")
    i.add_argument("--json", action="store_true", help="machine-readable output")
    i.set_defaults(func=_run("cmd_index_info"))


def _add_search(sub: Any) -> None:
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
    p.set_defaults(func=_run("cmd_search"))


def _add_eval(sub: Any) -> None:
    p = sub.add_parser(
        "eval", help="retrieval and zero-shot evaluation of a trained model",
        description="Retrieval metrics (R@k, median rank, MRR, mAP) per task, and zero-shot "
        "classification (top-1/top-5) with class prompts or labelled prototypes.")
    p.add_argument("model", help="a model folder")
    p.add_argument("--data", required=True, help="the evaluation manifest (.jsonl/.csv)")
    p.add_argument("--tasks", default=None,
                   help="comma-separated tasks such as 'audio->text,audio+video->text'")
    p.add_argument("--positives", choices=("source", "label"), default="source",
                   help="correct targets: paired on a row (source) or of the same label")
    p.add_argument("--ks", default="1,5,10", help="the k of recall@k")
    p.add_argument("--classes", help="zero-shot: a file of class names, one per line")
    p.add_argument("--template", default="{}", help="zero-shot prompt, e.g. 'a photo of {}'")
    p.add_argument("--class-modality", default=None,
                   help="the modality the prompts are embedded in (default: text)")
    p.add_argument("--prototypes", default=None, metavar="MODALITY",
                   help="zero-shot with labelled prototypes: the mean embedding per class of "
                   "this modality's items")
    p.add_argument("--prototype-data", default=None, help="the prototypes' manifest")
    p.add_argument("--zero-shot-modalities", default=None,
                   help="comma-separated modalities to classify (default: all others)")
    p.add_argument("--label-column", default="label", help="the manifest column of labels")
    p.add_argument("--batch-size", type=int, default=64, help="items embedded at once")
    p.add_argument("--json", action="store_true", help="machine-readable output")
    p.set_defaults(func=_run("cmd_eval"))


def _add_report(sub: Any) -> None:
    p = sub.add_parser(
        "report", help="plots and measures of a training run",
        description="Write report.png/.html/.json: loss and recall curves, recall bars, a "
        "similarity heatmap, a PCA of the embeddings by modality; print alignment and "
        "uniformity.")
    p.add_argument("run_dir", help="a training output folder (metrics.jsonl and model/)")
    p.add_argument("--data", default=None, help="a manifest for the sample batch")
    p.add_argument("--output", "-o", default=None, help="output folder (RUN_DIR/report)")
    p.add_argument("-n", type=int, default=256, help="rows of the sample batch")
    p.add_argument("--json", action="store_true", help="print the measures as JSON")
    p.set_defaults(func=_run("cmd_report"))


def add_retrieval_commands(sub: Any) -> None:
    """Add the retrieval subcommands to the ``anymodal`` parser's subparsers."""
    _add_embed(sub)
    _add_index(sub)
    _add_search(sub)
    _add_eval(sub)
    _add_report(sub)
