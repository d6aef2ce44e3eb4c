"""Two real gloo processes give the one-process loss, and W times its embedding gradients.

Each process holds its rows of the batch; negatives come through the differentiable
all-gather. DDP averages parameter gradients over processes, so the gradient of the
embeddings a process holds must be ``W x`` the one-process gradient of those rows, and the
mean over processes of a parameter's gradient (logit scale, SigLIP bias) the one-process one.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from pathlib import Path

import objectives_reference as ref
import pytest
import torch
from obj_dist_worker import WORLD, run_case

pytestmark = pytest.mark.slow

WORKER = Path(__file__).with_name("obj_dist_worker.py")


def _case(name: str, params: dict, m: int = 3, n: int = 6, splits=(3, 3), masked=True,
          complete: int = 2, seed: int = 0) -> dict:
    emb = ref.embeddings(m, n, 5, seed, grad=False)
    present = ref.present_masks(list(emb), n, seed, complete=complete) if masked else None
    label = f"{name}-{params}-m{m}-splits{list(splits)}-{'masked' if masked else 'full'}"
    return {"label": label, "name": name, "params": params, "embeddings": emb,
            "present": present, "scale": 2.5, "splits": list(splits)}


CASES = [
    _case("clip", {}),
    _case("clip", {"anchor": "m1", "reduction": "sum"}, m=4, n=7, splits=(4, 3)),
    _case("siglip", {"init_bias": -1.0}),
    _case("siglip", {}, m=2, n=7, splits=(5, 2), masked=False),
    _case("symile", {"negatives": "n", "seed": 3}),
    _case("symile", {"negatives": "n", "missing": "drop"}, m=4, n=8, splits=(4, 4), complete=4),
    _case("symile", {"negatives": "n_squared"}, m=3, n=6),
    _case("symile", {"negatives": "n_squared"}, m=4, n=5, splits=(3, 2), masked=False),
    # The complete rows all live in process 0: process 1 has no row in the term.
    _case("symile", {"negatives": "n_squared", "missing": "drop"}, complete=3),
    _case("gram", {}),
    _case("gram", {"missing": "drop", "anchor": "m2"}, m=4, n=8, splits=(4, 4), complete=5),
    _case("gram", {}, m=2, n=7, splits=(3, 4), masked=False),
    _case("gram", {"missing": "drop"}, complete=3),  # process 1 has no complete row
    _case("mv_infonce", {}),
    _case("mv_infonce", {"missing": "drop"}, m=4, n=8, splits=(5, 3), complete=4),
    _case("mv_dhel", {}),
    _case("mv_dhel", {"missing": "drop"}, complete=3),
    _case("mv_infonce", {"missing": "embedding"}, m=4, n=7, splits=(4, 3)),
    _case("mv_dhel", {}, m=4, n=8, splits=(2, 6), complete=1),
    _case("infoloob", {}),
    _case("infoloob", {"hopfield_beta": 8.0}, m=4, n=7, splits=(4, 3)),
    _case("dcl", {}),
    _case("dcl", {"weighted": True, "intra_modal": True}, m=4, n=8, splits=(5, 3)),
    _case("dcl", {"weighted": True}, m=2, n=7, splits=(3, 4), masked=False),
]


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture(scope="module")
def distributed_results(tmp_path_factory) -> list[list[dict]]:
    folder = tmp_path_factory.mktemp("objectives_dist")
    torch.save(CASES, folder / "cases.pt")
    env = {**os.environ, "ANYMODAL_DISABLE_PLUGIN_AUTOLOAD": "1", "OMP_NUM_THREADS": "1"}
    root = Path(__file__).resolve().parents[2]
    env["PYTHONPATH"] = os.pathsep.join([str(root), env.get("PYTHONPATH", "")])
    proc = subprocess.run(
        [sys.executable, str(WORKER), str(folder / "cases.pt"), str(folder), str(_free_port())],
        env=env, cwd=root, capture_output=True, text=True, timeout=300,
    )
    assert proc.returncode == 0, proc.stderr[-4000:]
    per_rank = [torch.load(folder / f"rank{r}.pt", weights_only=False) for r in range(WORLD)]
    return [list(case) for case in zip(*per_rank)]  # [case][rank]


@pytest.mark.parametrize("index", range(len(CASES)), ids=[c["label"] for c in CASES])
def test_two_processes_match_one(distributed_results, index: int) -> None:
    case = CASES[index]
    whole = run_case({**case, "splits": [sum(case["splits"])]}, rank=0)
    ranks = distributed_results[index]
    for r, result in enumerate(ranks):
        # Every process reports the one-process loss and parts (counts included).
        assert result["out"].keys() == whole["out"].keys()
        for key, value in whole["out"].items():
            torch.testing.assert_close(result["out"][key], value.detach(), msg=f"rank {r} {key}")
        start = sum(case["splits"][:r])
        rows = slice(start, start + case["splits"][r])
        for name, grad in whole["grads"].items():
            torch.testing.assert_close(result["grads"][name], WORLD * grad[rows],
                                       msg=f"rank {r} grad of {name}")
    mean_scale_grad = sum(res["scale_grad"] for res in ranks) / WORLD
    torch.testing.assert_close(mean_scale_grad, whole["scale_grad"])
    for p, want in enumerate(whole["param_grads"]):
        got = sum(res["param_grads"][p] for res in ranks) / WORLD
        torch.testing.assert_close(got, want)
