"""``build_digits(out_dir, config)``: plan, write the files in parallel, write the manifests.

Layout of ``out_dir``::

    image/digits-0000.png  audio/...wav  video/...mp4  pointcloud/...ply  graph/...pt
    manifest.jsonl         every row, with its "split"
    train.jsonl val.jsonl test.jsonl
    .anymodal-dataset.json the options the files were made with, and whether it finished

Sources in the manifests are relative to ``out_dir``, where the manifests are, which is how
anymodal's manifest reader resolves them.
"""

from __future__ import annotations

import dataclasses
import json
import multiprocessing
import os
import shutil
from collections.abc import Iterable
from concurrent.futures import FIRST_EXCEPTION, ProcessPoolExecutor, wait
from pathlib import Path
from typing import Any

import numpy as np

from anymodal import ConfigError

from .config import (
    FORMAT_VERSION,
    NON_CONTENT_FIELDS,
    NUM_SAMPLES,
    DigitsConfig,
    content_key,
    output_key,
    validate_digits_config,
)
from .plan import EXTENSIONS, SPLITS, SamplePlan, plan_sample
from .tools import require_tools

__all__ = ["MARKER", "build_digits", "load_marker", "render_chunk"]

MARKER = ".anymodal-dataset.json"
_CHUNK = 8  # samples per task: large enough to amortise the hand-off, small for the bar


def load_marker(out_dir: Path) -> dict[str, Any] | None:
    """The build record of ``out_dir`` (``None`` when there is none or it is unreadable)."""
    try:
        record = json.loads((out_dir / MARKER).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return record if isinstance(record, dict) and record.get("builder") == "digits" else None


def _write_text(path: Path, text: str) -> None:
    temporary = path.with_name(f".{path.name}.{os.getpid()}.part")
    temporary.write_text(text, encoding="utf-8")
    os.replace(temporary, path)


def _write_marker(out_dir: Path, config: DigitsConfig, complete: bool, rows: int) -> None:
    from anymodal_datasets import __version__

    record = {"builder": "digits", "version": __version__, "format": FORMAT_VERSION,
              "complete": complete, "rows": rows, "content_key": content_key(config),
              "output_key": output_key(config), "config": dataclasses.asdict(config)}
    _write_text(out_dir / MARKER, json.dumps(record, indent=2) + "\n")


def _is_cached(out_dir: Path, config: DigitsConfig) -> bool:
    record = load_marker(out_dir)
    return (record is not None and record.get("complete") is True
            and record.get("output_key") == output_key(config)
            and all((out_dir / f"{name}.jsonl").is_file() for name in ("manifest", *SPLITS)))


def _claim(out_dir: Path, config: DigitsConfig) -> None:
    """Check that the files already in ``out_dir`` were made with the same options.

    Such files are kept; others are removed when ``overwrite`` (else an error). Then the
    build is marked unfinished.
    """
    record = load_marker(out_dir)
    if record is not None and record.get("content_key") != content_key(config):
        if not config.overwrite:
            raise ConfigError(
                f"dataset 'digits': {out_dir} holds files built with other options "
                f"({_differences(record, config)}); choose another "
                "directory or pass overwrite=true to rebuild it")
        _remove_build(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    _write_marker(out_dir, config, complete=False, rows=0)


def _differences(record: dict[str, Any], config: DigitsConfig) -> str:
    """``"seed: 0 -> 1, ..."``: the content options that differ from the recorded ones."""
    previous = {**record.get("config", {}), "format": record.get("format")}
    now = {**dataclasses.asdict(config), "format": FORMAT_VERSION}
    keys = [k for k in now if k in previous and previous[k] != now[k]
            and k not in NON_CONTENT_FIELDS]
    return ", ".join(f"{k}: {previous[k]!r} -> {now[k]!r}" for k in keys) or "unknown"


def _remove_build(out_dir: Path) -> None:
    for modality in EXTENSIONS:
        shutil.rmtree(out_dir / modality, ignore_errors=True)
    for name in ("manifest", *SPLITS):
        (out_dir / f"{name}.jsonl").unlink(missing_ok=True)
    (out_dir / MARKER).unlink(missing_ok=True)


def _load_digits(count: int) -> tuple[np.ndarray, np.ndarray]:
    """The first ``count`` digits: ``[count, 8, 8]`` ink 0..16 and ``[count]`` labels."""
    from sklearn.datasets import load_digits

    digits = load_digits()
    return digits.images[:count], digits.target[:count].astype(int)


def render_chunk(out_dir: str, config: DigitsConfig,
                 items: list[tuple[SamplePlan, np.ndarray]]) -> int:
    """Write the files of ``items`` that do not exist yet (run in a worker process).

    Returns:
        how many samples were handled.
    """
    from .media import WRITERS

    root = Path(out_dir)
    for plan, pixels in items:
        for modality in plan.file_modalities():
            path = root / plan.relpath(modality)
            if not path.exists():
                WRITERS[modality](pixels, plan, path, config)
    return len(items)


def _chunks(items: list[Any], size: int) -> Iterable[list[Any]]:
    for start in range(0, len(items), size):
        yield items[start:start + size]


def _render_all(out_dir: Path, items: list[tuple[SamplePlan, np.ndarray]],
                config: DigitsConfig) -> None:
    """Run :func:`render_chunk` over ``items``, in ``config.workers`` processes."""
    from tqdm.auto import tqdm

    chunks = list(_chunks(items, _CHUNK))
    with tqdm(total=len(items), desc="digits", unit="sample",
              disable=not config.progress or not items) as bar:
        if config.workers == 1 or len(chunks) <= 1:
            for chunk in chunks:
                bar.update(render_chunk(str(out_dir), config, chunk))
            return
        # spawn: the parent usually holds torch's thread pools, which fork does not copy
        # safely; each worker imports what it needs once.
        context = multiprocessing.get_context("spawn")
        with ProcessPoolExecutor(min(config.workers, len(chunks)), mp_context=context) as pool:
            pending = {pool.submit(render_chunk, str(out_dir), config, c) for c in chunks}
            while pending:
                done, pending = wait(pending, return_when=FIRST_EXCEPTION)
                for future in done:
                    if future.exception() is not None:
                        pool.shutdown(wait=True, cancel_futures=True)
                        raise future.exception()  # type: ignore[misc]
                    bar.update(future.result())


def _write_manifests(out_dir: Path, plans: list[SamplePlan]) -> None:
    rows: dict[str, list[str]] = {name: [] for name in ("manifest", *SPLITS)}
    for plan in plans:
        line = json.dumps(plan.manifest_row(), ensure_ascii=False)
        rows["manifest"].append(line)
        rows[plan.split].append(line)
    for name, lines in rows.items():
        _write_text(out_dir / f"{name}.jsonl", "".join(line + "\n" for line in lines))


def build_digits(out_dir: Path, config: DigitsConfig) -> Path:
    """Build the ``digits`` data set into ``out_dir``; returns ``out_dir/manifest.jsonl``.

    A finished build with the same options returns at once; an interrupted one resumes
    (files that exist are kept). See :class:`~.config.DigitsConfig` for the options.

    Raises:
        ConfigError: a bad option, or ``out_dir`` holds files made with other options.
        ToolNotFoundError: espeak-ng (audio) or ffmpeg (video) is not installed.
        ToolError: one of them failed on a sample.
    """
    config = validate_digits_config(config)
    out_dir = Path(out_dir)
    if _is_cached(out_dir, config):
        return out_dir / "manifest.jsonl"
    require_tools(config.modalities)
    _claim(out_dir, config)
    count = NUM_SAMPLES if config.limit is None else min(config.limit, NUM_SAMPLES)
    images, labels = _load_digits(count)
    plans = [plan_sample(config, i, int(labels[i])) for i in range(count)]
    todo = [(plan, images[plan.index]) for plan in plans
            if any(not (out_dir / plan.relpath(m)).exists() for m in plan.file_modalities())]
    _render_all(out_dir, todo, config)
    _write_manifests(out_dir, plans)
    _write_marker(out_dir, config, complete=True, rows=len(plans))
    return out_dir / "manifest.jsonl"
