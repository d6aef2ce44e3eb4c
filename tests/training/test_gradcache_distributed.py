"""GradCache across two real gloo processes equals one process holding the whole batch.

Two processes hold 32 rows each of a 64-row batch and embed them in micro-batches of 8;
the objective gathers the cached embeddings with gradient, GradCache averages the
parameter gradients: every process must end with the one-process loss and gradients
(float64, 1e-5) of the 64 rows, for clip, symile (n_squared) and gram.
"""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest
import torch

from tests.conftest import PYTHON, REPO
from tests.training.gradcache_models import CASES, TinyModel, grads_of, make_batch

pytestmark = pytest.mark.slow

WORKER = Path(__file__).with_name("gradcache_worker.py")


@pytest.fixture(scope="module")
def per_rank(tmp_path_factory: pytest.TempPathFactory) -> list[list[dict]]:
    import os

    out = tmp_path_factory.mktemp("gradcache_dist")
    env = {**os.environ, "ANYMODAL_DISABLE_PLUGIN_AUTOLOAD": "1", "OMP_NUM_THREADS": "1",
           "PYTHONPATH": os.pathsep.join([str(REPO), os.environ.get("PYTHONPATH", "")])}
    launched = subprocess.run(
        [str(Path(PYTHON).parent / "accelerate"), "launch", "--multi_gpu", "--num_processes",
         "2", "--main_process_port", "0", str(WORKER), str(out)],
        cwd=REPO, env=env, capture_output=True, text=True, timeout=600)
    assert launched.returncode == 0, launched.stderr[-4000:]
    return [torch.load(out / f"rank{r}.pt", weights_only=False) for r in range(2)]


@pytest.mark.parametrize("index", range(len(CASES)), ids=[c[0] for c in CASES])
def test_two_processes_equal_one_batch_of_64(per_rank: list[list[dict]], index: int) -> None:
    name, params, modalities = CASES[index]
    keys = ["a", "b", "c"][:modalities]
    whole = TinyModel(keys, name, params)
    out = whole.compute_loss(make_batch(keys, 64, seed=1))
    out["loss"].backward()
    want = grads_of(whole)
    for rank in range(2):
        got = per_rank[rank][index]
        for key, value in out.items():
            torch.testing.assert_close(got["out"][key], value.detach(), atol=1e-5, rtol=1e-5,
                                       msg=f"rank {rank} {key}")
        assert got["grads"].keys() == want.keys()
        for param, grad in want.items():
            if grad is None:
                assert got["grads"][param] is None, (rank, param)
                continue
            torch.testing.assert_close(got["grads"][param], grad, atol=1e-5, rtol=1e-5,
                                       msg=f"rank {rank} grad of {param}")
