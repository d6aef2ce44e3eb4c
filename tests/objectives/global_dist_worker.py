"""Runs ``global_contrastive`` in two real gloo processes; used by ``test_obj_global.py``.

Usage: ``python global_dist_worker.py OUT_DIR PORT``. Every process takes its rows of each
step's batch (``splits`` rows per rank, in rank order), computes the objective over three
steps that revisit rows (so the stored state matters), back-propagates, and saves the
outputs, the gradients and its whole per-row table to ``OUT_DIR/rank<r>.pt``.
"""

from __future__ import annotations

import sys
from pathlib import Path

import torch
import torch.distributed as dist
import torch.multiprocessing as mp

WORLD = 2
DATASET_ROWS = 20
STEP_ROWS = [[0, 3, 5, 7, 9, 11, 13], [2, 4, 6, 8, 10, 12, 14], [13, 9, 2, 5, 14, 0, 6]]


def _case(label: str, params: dict, m: int, splits: list[int], masked: bool) -> dict:
    return {"label": label, "params": params, "m": m, "splits": splits, "masked": masked}


CASES = [
    _case("m2-full", {}, 2, [4, 3], False),
    _case("m3-masked", {"gamma": 0.5}, 3, [3, 4], True),
    _case("m4-anchor-masked", {"anchor": "m2", "reduction": "sum"}, 4, [5, 2], True),
]


def _inputs(case: dict, step: int) -> tuple[dict, dict | None]:
    generator = torch.Generator().manual_seed(100 * case["m"] + step)
    n = len(STEP_ROWS[step])
    emb = {}
    for k in range(case["m"]):
        x = torch.randn(n, 5, generator=generator, dtype=torch.float64)
        emb[f"m{k}"] = x / x.norm(dim=-1, keepdim=True)
    present = None
    if case["masked"]:
        masks = torch.rand(n, case["m"], generator=generator) >= 0.3
        masks[:2] = True
        present = {f"m{k}": masks[:, k].clone() for k in range(case["m"])}
    return emb, present


def run_case(case: dict, rank: int, splits: list[int] | None = None) -> dict:
    """Three steps of one case on this process's rows (``splits`` overrides the case's)."""
    import anymodal

    splits = splits or case["splits"]
    objective = anymodal.create_objective("global_contrastive", **case["params"]).double()
    objective.bind_rows(DATASET_ROWS, [f"m{k}" for k in range(case["m"])])
    steps = []
    for step, rows in enumerate(STEP_ROWS):
        emb, present = _inputs(case, step)
        start = sum(splits[:rank])
        mine = slice(start, start + splits[rank])
        local = {k: v[mine].clone().requires_grad_() for k, v in emb.items()}
        local_present = None if present is None else {k: v[mine] for k, v in present.items()}
        out = objective(local, 2.5, local_present, rows=torch.tensor(rows)[mine])
        out["loss"].backward()
        steps.append({"out": {k: v.detach() for k, v in out.items()},
                      "grads": {k: v.grad for k, v in local.items()}})
    assert objective.state is not None
    return {"steps": steps, "log_u": objective.state.log_u.clone()}


def worker(rank: int, out_dir: str, port: int) -> None:
    dist.init_process_group("gloo", init_method=f"tcp://127.0.0.1:{port}", rank=rank,
                            world_size=WORLD)
    try:
        torch.set_num_threads(1)
        results = [run_case(case, rank) for case in CASES]
        torch.save(results, Path(out_dir) / f"rank{rank}.pt")
    finally:
        dist.destroy_process_group()


if __name__ == "__main__":
    mp.spawn(worker, args=(sys.argv[1], int(sys.argv[2])), nprocs=WORLD, join=True)
