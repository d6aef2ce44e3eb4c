"""Order of magnitude of the chunked path's peak memory (the benchmark has the figures).

The chunked path holds one block of ``chunk_elements`` logits at a time, whatever the
number of anchor rows: its peak for 64 anchor rows against two 1024-row modalities is the
peak of the full N = 1024, K = 2 problem, at a sixteenth of the time (the full problem takes
over a minute of CPU; ``benchmarks/kernels.py`` measures it). The test checks that peak
against the naive 1024^3 float32 tensor (4 GiB).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap

import pytest

# Runs in a fresh process so that the peak resident size (ru_maxrss) is this run's alone.
_CHILD = textwrap.dedent(
    """
    import json, resource, torch
    from anymodal.kernels import mip_logsumexp
    torch.manual_seed(0)
    n, d = 1024, 16
    a, b, c = (torch.nn.functional.normalize(torch.randn(rows, d), dim=1).requires_grad_()
               for rows in (64, n, n))
    mip_logsumexp(a[:8], [b[:8], c[:8]], 5.0).sum().backward()  # warm up kernels, threads
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    out = mip_logsumexp(a, [b, c], 5.0)
    out.sum().backward()
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    ok = bool(torch.isfinite(out).all() and torch.isfinite(a.grad).all())
    print(json.dumps({"extra": peak - before, "finite": ok}))
    """
)


def _run_child(code: str) -> dict:
    """Run ``code`` in a fresh interpreter (its own peak RSS) on the torch path; its JSON line."""
    env = {**os.environ, "ANYMODAL_KERNEL": "torch"}
    proc = subprocess.run(
        [sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=600
    )
    assert proc.returncode == 0, proc.stderr
    return json.loads(proc.stdout.strip().splitlines()[-1])


@pytest.mark.slow
def test_chunked_peak_memory_is_far_below_the_cube() -> None:
    result = _run_child(_CHILD)
    naive_bytes = 1024**3 * 4  # the float32 N x N x N logits: 4 GiB
    assert result["finite"]
    assert result["extra"] < naive_bytes / 10, f"{result['extra'] / 2**20:.0f} MiB"


_CHILD_ALL = textwrap.dedent(
    """
    import json, resource, torch
    from anymodal.kernels import mip_logsumexp_all
    torch.manual_seed(0)
    n, d = 1024, 16
    xs = [torch.nn.functional.normalize(torch.randn(rows, d), dim=1).requires_grad_()
          for rows in (32, n, n)]
    sum(o.sum() for o in mip_logsumexp_all([x[:8] for x in xs], 5.0)).backward()  # warm up
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    outs = mip_logsumexp_all(xs, 5.0)
    sum(o.sum() for o in outs).backward()
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    ok = all(bool(torch.isfinite(t).all()) for t in [*outs, *(x.grad for x in xs)])
    print(json.dumps({"extra": peak - before, "finite": ok}))
    """
)


@pytest.mark.slow
def test_one_pass_peak_memory_is_far_below_the_tensor() -> None:
    # Every axis's normaliser of a 32 x 1024 x 1024 tensor: the naive float32 tensor takes
    # 128 MiB, its backward several times that; the one-pass path holds a few boxes.
    result = _run_child(_CHILD_ALL)
    assert result["finite"]
    assert result["extra"] < 128 * 2**20 / 2, f"{result['extra'] / 2**20:.0f} MiB"
