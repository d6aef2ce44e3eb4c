"""GradCache in two real gloo processes; run by ``test_gradcache_distributed.py``.

Usage: ``accelerate launch --multi_gpu --num_processes 2 gradcache_worker.py OUT_DIR``.
Each process wraps the float64 model in DistributedDataParallel (as the training loop
does), takes its half of a 64-row batch, runs GradCache in micro-batches of 8 on the
unwrapped model, and saves its loss, parts and gradients to ``OUT_DIR/rank<r>.pt``.
"""

from __future__ import annotations

import sys
from pathlib import Path

import torch
from accelerate import Accelerator, DistributedDataParallelKwargs

from anymodal.training.gradcache import gradcache_step
from tests.training.gradcache_models import CASES, TinyModel, grads_of, make_batch, rows_of

ROWS, MICRO = 64, 8


def main(out_dir: Path) -> None:
    torch.set_num_threads(1)
    acc = Accelerator(cpu=True, kwargs_handlers=[
        DistributedDataParallelKwargs(find_unused_parameters=True)])
    assert acc.num_processes == 2, acc.num_processes
    share = ROWS // acc.num_processes
    start = acc.process_index * share
    results = []
    for name, params, modalities in CASES:
        keys = ["a", "b", "c"][:modalities]
        wrapped = acc.prepare(TinyModel(keys, name, params))
        local = rows_of(make_batch(keys, ROWS, seed=1), keys, start, start + share)
        out = gradcache_step(acc.unwrap_model(wrapped), local, MICRO, backward=acc.backward)
        results.append({"out": {k: v.detach() for k, v in out.items()},
                        "grads": grads_of(acc.unwrap_model(wrapped))})
    torch.save(results, out_dir / f"rank{acc.process_index}.pt")
    acc.wait_for_everyone()
    acc.end_training()


if __name__ == "__main__":
    main(Path(sys.argv[1]))
