"""The multi-node path on one machine: two launchers (machine ranks 0 and 1) meet on the
loopback address, train together over gloo, and equal one process on the same global batch.

``recipes/accelerate/multinode_loopback.yaml`` is ``multinode.yaml`` with the main process
on 127.0.0.1 and one process per "machine"; each launcher is a separate
``accelerate launch --machine_rank R`` (torchrun with ``--nnodes 2 --node_rank R``), as on a
real cluster.
"""

from __future__ import annotations

import json
import socket
import subprocess
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from tests.conftest import PYTHON, REPO

pytestmark = pytest.mark.slow

CONFIG = REPO / "recipes" / "accelerate" / "multinode_loopback.yaml"
COMMON = ["train.max_steps=3", "train.log_every=1", "logging.progress=false", "data.val=null",
          "train.eval_every=0", "train.deterministic=true"]


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _losses(run: Path) -> list[tuple[int, int, float]]:
    rows = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    return [(r["step"], r["train/world_size"], r["train/loss"]) for r in rows]


def _two_machines(out: Path, env: dict[str, str], extra: list[str]) -> None:
    port = str(_free_port())
    launchers = [
        subprocess.Popen(
            [str(Path(PYTHON).parent / "accelerate"), "launch", "--config_file", str(CONFIG),
             "--machine_rank", str(rank), "--main_process_port", port, "-m", "anymodal",
             "train", "recipes/smoke_clip.yaml", *COMMON, *extra, f"train.output_dir={out}"],
            cwd=REPO, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        for rank in (0, 1)
    ]
    try:
        logs = [launcher.communicate(timeout=600)[0] for launcher in launchers]
    finally:
        for launcher in launchers:  # a launcher left waiting for its peer must not linger
            if launcher.poll() is None:
                launcher.kill()
    for rank, (launcher, log) in enumerate(zip(launchers, logs)):
        assert launcher.returncode == 0, f"machine rank {rank}:\n{log[-3000:]}"


@pytest.mark.parametrize("micro", [None, 4], ids=["plain", "gradcache"])
def test_two_launchers_on_loopback_equal_one_process(tmp_path: Path, cli_env: dict[str, str],
                                                     micro: int | None) -> None:
    """With ``train.micro_batch=4`` each machine embeds its 16 rows 4 at a time (GradCache)
    and the step is still the one-process step on the 32 rows."""
    env = {**cli_env, "OMP_NUM_THREADS": "1"}
    two = tmp_path / "two"
    extra = [] if micro is None else [f"train.micro_batch={micro}"]
    _two_machines(two, env, ["data.batch_size=16", *extra])  # 16 rows on each machine
    one = tmp_path / "one"
    single = subprocess.run(
        [PYTHON, "-m", "anymodal", "train", "recipes/smoke_clip.yaml", *COMMON,
         "data.batch_size=32", f"train.output_dir={one}"],
        cwd=REPO, env=env, capture_output=True, text=True, timeout=600)
    assert single.returncode == 0, single.stderr[-3000:]

    got, want = _losses(two), _losses(one)
    assert [s for s, _, _ in got] == [1, 2, 3] and {w for _, w, _ in got} == {2}
    assert {w for _, w, _ in want} == {1}
    # The same 32 rows per step (seeded sampler), negatives gathered across the machines:
    # the one-process loss at every step, hence the same updates.
    for (step, _, a), (_, _, b) in zip(got, want):
        assert a == pytest.approx(b, abs=1e-5), f"step {step}"
    weights_two = load_file(str(two / "model" / "model.safetensors"))
    weights_one = load_file(str(one / "model" / "model.safetensors"))
    assert weights_two.keys() == weights_one.keys()
    for key in weights_one:
        torch.testing.assert_close(weights_two[key], weights_one[key], atol=1e-5, rtol=1e-4,
                                   msg=key)
