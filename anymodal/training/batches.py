"""The training batches, from where the run stands, forever, with the time spent waiting.

A map-style set is read through Accelerate's prepared loader: epoch ``e`` is the seeded
permutation of epoch ``e`` on every process, and a resumed run skips the batches of the
current epoch it already consumed. A stream cannot seek: a resumed run reads past them.
"""

from __future__ import annotations

import time
from collections.abc import Iterable, Iterator
from typing import Any

from anymodal.errors import AnymodalError

from .context import Run

__all__ = ["training_batches"]


def _epoch_loader(run: Run, stream_epoch: int) -> Iterable[dict[str, Any]]:
    if run.streaming:
        run.train_set.set_epoch(stream_epoch)  # type: ignore[attr-defined]
        return run.train_loader
    # One pass of the loader chains several epochs (EpochSampler): pass p starts at epoch
    # p * epochs, and a resumed run skips the batches of the pass it already consumed.
    sampler = _epoch_sampler(run.train_loader)
    per_pass = sampler.epochs if sampler is not None else 1
    done, skip = divmod(run.state.batches_seen, len(run.train_loader))
    run.train_loader.set_epoch(done * per_pass)  # type: ignore[attr-defined]
    if skip:
        return run.accelerator.skip_first_batches(run.train_loader, skip)
    return run.train_loader


def _epoch_sampler(loader: Any) -> Any:
    """The :class:`~anymodal.data.subsets.EpochSampler` under a prepared loader, if any."""
    batch_sampler = getattr(loader, "batch_sampler", None)
    for _ in range(3):  # BatchSamplerShard -> BatchSampler -> sampler
        sampler = getattr(batch_sampler, "sampler", None)
        if sampler is not None and hasattr(sampler, "epochs"):
            return sampler
        batch_sampler = getattr(batch_sampler, "batch_sampler", None)
    return None


def training_batches(run: Run) -> Iterator[dict[str, Any]]:
    """Yield batches forever; add the seconds spent waiting for each to ``run.data_wait``."""
    if not run.streaming and len(run.train_loader) == 0:
        raise AnymodalError(
            f"the training set has fewer rows ({len(run.train_set)}) than one batch "  # type: ignore[arg-type]
            f"per process (data.batch_size={run.config.data.batch_size})")
    to_skip = run.state.batches_seen if run.streaming else 0
    stream_epoch, read_any = 0, False
    while True:
        iterator = iter(_epoch_loader(run, stream_epoch))
        stream_epoch += 1
        while True:
            waited = time.perf_counter()
            batch = next(iterator, None)
            run.data_wait += time.perf_counter() - waited
            if batch is None:
                break
            read_any = True
            if to_skip:
                to_skip -= 1
                continue
            yield batch
        if run.streaming and not read_any:
            raise AnymodalError(f"no rows could be read from {run.config.data.train.path}")
