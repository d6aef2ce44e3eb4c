"""Runs objectives in two real gloo processes; used by ``test_obj_distributed.py``.

Usage: ``python obj_dist_worker.py CASES.pt OUT_DIR PORT``. Every process takes its
rows of each case's batch (``case["splits"]`` rows per rank, in rank order), computes the
objective, back-propagates, and saves the loss, the parts and the gradients to
``OUT_DIR/rank<r>.pt``. The test compares them with one process holding the whole batch.
"""

from __future__ import annotations

import sys
from pathlib import Path

import torch
import torch.distributed as dist
import torch.multiprocessing as mp

WORLD = 2


def run_case(case: dict, rank: int) -> dict:
    import anymodal

    start = sum(case["splits"][:rank])
    rows = slice(start, start + case["splits"][rank])
    emb = {k: v[rows].clone().requires_grad_() for k, v in case["embeddings"].items()}
    present = None
    if case["present"] is not None:
        present = {k: v[rows].clone() for k, v in case["present"].items()}
    scale = torch.tensor(case["scale"], dtype=torch.float64, requires_grad=True)
    objective = anymodal.create_objective(case["name"], **case["params"]).double()
    out = objective(emb, scale, present)
    out["loss"].backward()
    return {
        "out": {k: v.detach() for k, v in out.items()},
        "grads": {k: v.grad for k, v in emb.items()},
        "scale_grad": scale.grad,
        "param_grads": [p.grad for p in objective.parameters()],
    }


def worker(rank: int, cases_path: str, out_dir: str, port: int) -> None:
    dist.init_process_group(
        "gloo", init_method=f"tcp://127.0.0.1:{port}", rank=rank, world_size=WORLD
    )
    try:
        torch.set_num_threads(1)
        cases = torch.load(cases_path, weights_only=False)
        results = [run_case(case, rank) for case in cases]
        torch.save(results, Path(out_dir) / f"rank{rank}.pt")
    finally:
        dist.destroy_process_group()


if __name__ == "__main__":
    cases_path, out_dir, port = sys.argv[1], sys.argv[2], int(sys.argv[3])
    mp.spawn(worker, args=(cases_path, out_dir, port), nprocs=WORLD, join=True)
