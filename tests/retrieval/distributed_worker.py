"""One process of a two-process index build; run by ``test_retrieval_distributed.py``.

Usage: ``accelerate launch --multi_gpu --num_processes 2 distributed_worker.py MODEL ITEMS
OUT``: every process loads the model folder and the items (``torch.save``d list), calls
:func:`build_index_distributed`, and writes which shards it embedded to ``OUT.rank<r>.json``.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import torch
from accelerate import Accelerator

import anymodal
from anymodal.retrieval import distributed


def main(model_dir: str, items_file: str, out: str) -> None:
    torch.set_num_threads(1)
    accelerator = Accelerator(cpu=True)
    assert accelerator.num_processes == 2, accelerator.num_processes
    model = anymodal.load_model(model_dir)
    items = torch.load(items_file)
    embedded: list[int] = []
    original = distributed._embed_shard

    def counting(model: object, job: object, shard: int, on_error: str) -> None:
        embedded.append(shard)
        original(model, job, shard, on_error)  # type: ignore[arg-type]

    distributed._embed_shard = counting  # type: ignore[assignment]
    distributed.build_index_distributed(
        model, "c", items, out, ids=[f"r{i}" for i in range(len(items))], batch_size=8,
        shard_size=16, progress=False, backend="ivf", nlist=4, nprobe=2, keep_shards=True,
        accelerator=accelerator)
    rank = accelerator.process_index
    Path(f"{out}.rank{rank}.json").write_text(json.dumps(embedded))


if __name__ == "__main__":
    main(*sys.argv[1:4])
