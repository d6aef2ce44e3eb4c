"""``global_contrastive`` (SogCLR / FastCLIP): the per-row moving-average denominator.

- a float64 reference written with loops from the equations (M = 2, 3, 4, with and without
  masks, anchor and all pairs), over several steps that revisit rows: value, gradient and
  the per-row state;
- LibAUC's ``GCLoss`` (the published code) on committed fixtures, 1e-6;
- two gloo processes equal one (loss, W x gradients, and the same state on every process);
- GradCache updates the state once per step and gives the one-pass gradient;
- clear errors without row indices, out-of-range indices, a stream, a wrong checkpoint.
"""

from __future__ import annotations

import json
import math
import os
import socket
import subprocess
import sys
from pathlib import Path

import objectives_reference as ref
import pytest
import torch

import anymodal
from anymodal.errors import ArtifactError, ConfigError, DataError
from anymodal.objectives.global_contrastive import GlobalContrastiveLoss, update_log_u
from anymodal.objectives.row_state import RowDenominators, batch_rows

HERE = Path(__file__).resolve().parent
FIXTURES = json.loads((HERE / "fixtures" / "global_contrastive.json").read_text())
DATASET_ROWS = 12


# -- the reference ------------------------------------------------------------------------------


def _keep(present, names, n) -> list[int]:
    if present is None:
        return list(range(n))
    return [i for i in range(n) if all(bool(present[m][i]) for m in names if m in present)]


def reference_step(emb, present, s: float, pairs, gamma: float, table: dict, rows,
                   reduction: str = "mean"):
    """One training step of SogCLR, with loops.

    Returns ``(value, grad_loss)``: the reported value (mean over each direction's rows of
    ``log u_i``) and a loss whose gradient is SogCLR's (``g_i / sg(u_i)``); ``table`` maps
    ``(row, "a->b")`` to ``u`` and is updated in place.
    """
    n = len(rows)
    values, grad_terms, new = [], [], {}
    for a, b in pairs:
        keep = _keep(present, [a, b], n)
        if len(keep) < 2:
            continue
        per_direction = []
        for x, y in ((a, b), (b, a)):
            logs, ratios = [], []
            for i in keep:
                g = sum(torch.exp(s * (emb[x][i] @ emb[y][j] - emb[x][i] @ emb[y][i]))
                        for j in keep if j != i) / (len(keep) - 1)
                key = (int(rows[i]), f"{x}->{y}")
                old = table.get(key)
                u = g.detach() if old is None else (1 - gamma) * old + gamma * g.detach()
                new[key] = u
                logs.append(torch.log(u))
                ratios.append(g / u)
            per_direction.append((sum(logs) / len(logs), sum(ratios) / len(ratios)))
        values.append(sum(v for v, _ in per_direction) / 2)
        grad_terms.append(sum(r for _, r in per_direction) / 2)
    table.update(new)
    value, grad_loss = sum(values), sum(grad_terms)
    if reduction == "mean":
        value, grad_loss = value / len(values), grad_loss / len(grad_terms)
    return value, grad_loss


def _objective(names, **params) -> GlobalContrastiveLoss:
    objective = anymodal.create_objective("global_contrastive", **params).double()
    objective.bind_rows(DATASET_ROWS, names)
    return objective


def _table_of(objective: GlobalContrastiveLoss) -> dict:
    state = objective.state
    assert state is not None
    out = {}
    for row in range(state.rows):
        for column, name in enumerate(state.directions):
            value = float(state.log_u[row, column])
            if math.isfinite(value):
                out[(row, name)] = value
    return out


STEP_ROWS = [[0, 1, 2, 3, 4, 5, 6], [7, 8, 9, 10, 11, 2], [5, 3, 11, 0, 8, 1, 9]]
REFERENCE_CASES = [
    (m, masked, params)
    for m in (2, 3, 4)
    for masked in (False, True)
    for params in ({}, {"anchor": "m1", "reduction": "sum", "gamma": 0.3})
    if not (m == 2 and params)
]


@pytest.mark.parametrize(("m", "masked", "params"), REFERENCE_CASES,
                         ids=[f"m{c[0]}-{'masked' if c[1] else 'full'}-{c[2]}"
                              for c in REFERENCE_CASES])
def test_matches_the_float64_reference_over_steps(m: int, masked: bool, params: dict) -> None:
    names = [f"m{k}" for k in range(m)]
    objective = _objective(names, **params)
    pairs = ([(params["anchor"], o) for o in names if o != params["anchor"]]
             if "anchor" in params else ref.all_pairs(names))
    gamma, s, table = params.get("gamma", 0.9), 2.5, {}
    for step, rows in enumerate(STEP_ROWS):
        emb = ref.embeddings(m, len(rows), 5, seed=10 * m + step)
        present = ref.present_masks(names, len(rows), step, complete=2) if masked else None
        out = objective(emb, torch.tensor(s, dtype=torch.float64), present,
                        rows=torch.tensor(rows))
        value, grad_loss = reference_step(emb, present, s, pairs, gamma, table, rows,
                                          params.get("reduction", "mean"))
        torch.testing.assert_close(out["loss"].detach(), value.detach(), rtol=1e-10, atol=1e-10)
        got = torch.autograd.grad(out["loss"], list(emb.values()))
        want = torch.autograd.grad(grad_loss, list(emb.values()))
        for name, g, w in zip(names, got, want):
            torch.testing.assert_close(g, w, rtol=1e-10, atol=1e-10, msg=f"step {step} {name}")
        state = _table_of(objective)
        assert state.keys() == table.keys()
        for key, u in table.items():
            assert state[key] == pytest.approx(math.log(float(u)), abs=1e-10), key


def test_the_state_makes_a_difference() -> None:
    """A row seen before is weighted by its remembered denominator, not the batch's."""
    names = ["m0", "m1"]
    fresh, seasoned = _objective(names), _objective(names)
    rows = torch.arange(6)
    first = ref.embeddings(2, 6, 5, seed=1)
    seasoned(first, 2.5, rows=rows)
    second = ref.embeddings(2, 6, 5, seed=2)
    a = torch.autograd.grad(fresh(second, 2.5, rows=rows)["loss"], list(second.values()))
    b = torch.autograd.grad(seasoned(second, 2.5, rows=rows)["loss"], list(second.values()))
    assert (a[0] - b[0]).abs().max() > 1e-3
    # gamma = 1 keeps no memory: the batch's own denominator.
    assert torch.equal(update_log_u(torch.tensor([0.5]), torch.tensor([2.0]), 1.0),
                       torch.tensor([2.0]))


def test_u_estimates_the_global_denominator_better_than_a_batch() -> None:
    """Fixed embeddings, batches of 16 of 256 rows, 10 epochs: ``u_i`` is nearer the
    denominator over the whole data set than one batch's estimate (measured 0.14 against
    0.38 mean relative error at gamma 0.2)."""
    g = torch.Generator().manual_seed(0)
    n, s, batch = 256, 5.0, 16
    x = torch.nn.functional.normalize(torch.randn(n, 8, generator=g, dtype=torch.float64), dim=-1)
    y = torch.nn.functional.normalize(x + 0.7 * torch.randn(n, 8, generator=g,
                                                            dtype=torch.float64), dim=-1)
    z = s * (x @ y.T - (x * y).sum(1, keepdim=True))
    others = ~torch.eye(n, dtype=torch.bool)
    whole = (z.exp() * others).sum(1) / (n - 1)  # the global denominator of each row
    objective = anymodal.create_objective("global_contrastive", gamma=0.2).double()
    objective.bind_rows(n, ["x", "y"])
    batch_errors = []
    for _ in range(10):
        order = torch.randperm(n, generator=g)
        for start in range(0, n, batch):
            rows = order[start:start + batch]
            objective({"x": x[rows], "y": y[rows]}, s, rows=rows)
            local = z[rows][:, rows].exp() * ~torch.eye(len(rows), dtype=torch.bool)
            estimate = local.sum(1) / (len(rows) - 1)
            batch_errors.append((estimate - whole[rows]).abs() / whole[rows])
    u = objective.state.log_u[:, objective.state.directions.index("x->y")].exp()
    u_error = float(((u - whole).abs() / whole).mean())
    assert u_error < 0.5 * float(torch.cat(batch_errors).mean())


def test_evaluation_mode_reads_and_writes_no_state() -> None:
    names = ["m0", "m1", "m2"]
    objective = _objective(names)
    emb = ref.embeddings(3, 6, 5, seed=3)
    objective.eval()
    out = objective(emb, 2.5)  # no rows needed
    assert not torch.isfinite(objective.state.log_u).any()
    value, _ = reference_step(emb, None, 2.5, ref.all_pairs(names), 0.9, {}, list(range(6)))
    torch.testing.assert_close(out["loss"].detach(), value.detach())


def test_score_is_the_summed_similarity_like_clip() -> None:
    assert GlobalContrastiveLoss.query_rule == "sum"
    objective, clip = anymodal.create_objective("global_contrastive"), \
        anymodal.create_objective("clip")
    emb = ref.embeddings(3, 5, 4, seed=4, grad=False)
    query = {"m0": emb["m0"], "m1": emb["m1"]}
    torch.testing.assert_close(objective.score(query, emb["m2"], 3.0),
                               clip.score(query, emb["m2"], 3.0))


# -- the published code -------------------------------------------------------------------------


@pytest.mark.parametrize("case", FIXTURES["cases"], ids=lambda c: f"tau{c['tau']:.3g}")
def test_matches_libauc_gcloss(case: dict) -> None:
    """LibAUC's loss is ``(B - 1) / s`` times this one's; ``u`` is the same."""
    s = 1.0 / case["tau"]
    objective = anymodal.create_objective("global_contrastive", gamma=case["gamma"]).double()
    objective.bind_rows(case["rows"], ["x", "y"])
    state = objective.state
    assert state is not None
    for step in case["steps"]:
        x = torch.tensor(step["x"], dtype=torch.float64, requires_grad=True)
        y = torch.tensor(step["y"], dtype=torch.float64, requires_grad=True)
        out = objective({"x": x, "y": y}, s, rows=torch.tensor(step["index"]))
        gx, gy = torch.autograd.grad(out["loss"], [x, y])
        factor = (len(step["index"]) - 1) / s
        torch.testing.assert_close(gx * factor, torch.tensor(step["grad_x"], dtype=torch.float64),
                                   rtol=1e-6, atol=1e-9)
        torch.testing.assert_close(gy * factor, torch.tensor(step["grad_y"], dtype=torch.float64),
                                   rtol=1e-6, atol=1e-9)
        for name, key in (("x->y", "log_u_xy"), ("y->x", "log_u_yx")):
            want = torch.tensor(step[key], dtype=torch.float64)
            got = state.log_u[:, state.directions.index(name)]
            assert torch.equal(torch.isinf(got), torch.isinf(want))
            seen = torch.isfinite(want)
            torch.testing.assert_close(got[seen], want[seen], rtol=1e-6, atol=1e-9)


# -- errors ------------------------------------------------------------------------------------


def test_training_without_row_indices_is_a_clear_error() -> None:
    objective = _objective(["m0", "m1"])
    with pytest.raises(DataError, match=r"batch\['rows'\].*missing.*global_contrastive"):
        objective(ref.embeddings(2, 4, 3, seed=0), 2.0)
    unbound = anymodal.create_objective("global_contrastive")
    with pytest.raises(ConfigError, match="bind_rows"):
        unbound(ref.embeddings(2, 4, 3, seed=0, dtype=torch.float32), 2.0,
                rows=torch.arange(4))


def test_row_indices_are_checked() -> None:
    objective = _objective(["m0", "m1"])
    emb = ref.embeddings(2, 4, 3, seed=0)
    with pytest.raises(DataError, match=f"built for {DATASET_ROWS} training rows"):
        objective(emb, 2.0, rows=torch.tensor([0, 1, 2, DATASET_ROWS]))
    with pytest.raises(DataError, match=r"expected \(4,\)"):
        objective(emb, 2.0, rows=torch.arange(3))
    with pytest.raises(DataError, match="integers"):
        objective(emb, 2.0, rows=torch.zeros(4))


def test_a_stream_without_row_indices_is_refused_at_build_time() -> None:
    with pytest.raises(ConfigError, match="webdataset"):
        anymodal.create_objective("global_contrastive").bind_rows(None, ["a", "b"])
    with pytest.raises(ConfigError, match="gamma"):
        anymodal.create_objective("global_contrastive", gamma=0.0)


def test_state_round_trips_and_refuses_another_shape() -> None:
    state = RowDenominators(5, ["a->b", "b->a"])
    state.write(torch.tensor([1, 3, 1]), torch.tensor([[0.5, float("nan")], [1.0, 2.0],
                                                       [0.7, 0.1]], dtype=torch.float64))
    # Row 1 listed twice: its last values; NaN keeps the old value.
    assert state.log_u[1].tolist() == [0.7, 0.1]
    assert state.log_u[3].tolist() == [1.0, 2.0]
    copy = RowDenominators(5, ["a->b", "b->a"])
    copy.load_state_dict(state.state_dict())
    assert torch.equal(copy.log_u, state.log_u)
    with pytest.raises(ArtifactError, match="same training set"):
        RowDenominators(6, ["a->b", "b->a"]).load_state_dict(state.state_dict())


def test_batch_rows_hands_the_indices_for_one_call_only() -> None:
    objective = _objective(["m0", "m1"])
    emb = ref.embeddings(2, 4, 3, seed=0)
    with batch_rows(objective, {"rows": torch.arange(4)}):
        objective(emb, 2.0)
    with pytest.raises(DataError):
        objective(emb, 2.0)
    with batch_rows(anymodal.create_objective("clip"), {}):  # others are left alone
        pass


# -- GradCache ----------------------------------------------------------------------------------


def test_gradcache_updates_the_state_once_and_gives_the_one_pass_gradient() -> None:
    from anymodal.training.gradcache import gradcache_step
    from tests.training.gradcache_models import TinyModel, grads_of, make_batch

    keys = ["a", "b", "c"]
    whole, cached = TinyModel(keys, "global_contrastive"), TinyModel(keys, "global_contrastive")
    for model in (whole, cached):
        model.objective.bind_rows(100, keys)
    for step in range(3):  # the later steps read what the earlier ones stored
        batch = make_batch(keys, 32, seed=step)
        batch["rows"] = torch.randperm(100, generator=torch.Generator().manual_seed(step % 2))[:32]
        for model in (whole, cached):
            model.zero_grad()
        with batch_rows(whole.objective, batch):
            want = whole.compute_loss(batch)
        want["loss"].backward()
        got = gradcache_step(cached, batch, micro_batch=8)
        torch.testing.assert_close(got["loss"].detach(), want["loss"].detach())
        assert torch.equal(cached.objective.state.log_u.isfinite(),
                           whole.objective.state.log_u.isfinite())
        torch.testing.assert_close(cached.objective.state.log_u, whole.objective.state.log_u,
                                   rtol=1e-12, atol=1e-12)
        for name, grad in grads_of(whole).items():
            if grad is not None:
                torch.testing.assert_close(grads_of(cached)[name], grad, rtol=1e-8,
                                           atol=1e-10, msg=f"step {step} {name}")


# -- two processes ------------------------------------------------------------------------------


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.mark.slow
def test_two_gloo_processes_equal_one(tmp_path: Path) -> None:
    import global_dist_worker as worker

    env = {**os.environ, "ANYMODAL_DISABLE_PLUGIN_AUTOLOAD": "1", "OMP_NUM_THREADS": "1"}
    root = HERE.parents[1]
    env["PYTHONPATH"] = os.pathsep.join([str(root), str(HERE), env.get("PYTHONPATH", "")])
    proc = subprocess.run([sys.executable, str(HERE / "global_dist_worker.py"), str(tmp_path),
                           str(_free_port())], env=env, cwd=root, capture_output=True,
                          text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-4000:]
    for index, case in enumerate(worker.CASES):
        whole = worker.run_case(case, rank=0, splits=[sum(case["splits"])])
        for r in range(worker.WORLD):
            got = torch.load(tmp_path / f"rank{r}.pt", weights_only=False)[index]
            start = sum(case["splits"][:r])
            mine = slice(start, start + case["splits"][r])
            for step, (g, w) in enumerate(zip(got["steps"], whole["steps"])):
                for key, value in w["out"].items():
                    torch.testing.assert_close(g["out"][key], value,
                                               msg=f"{case['label']} rank {r} step {step} {key}")
                for name, grad in w["grads"].items():
                    torch.testing.assert_close(g["grads"][name], worker.WORLD * grad[mine],
                                               msg=f"{case['label']} rank {r} step {step} {name}")
            # Every process holds the whole table, equal to the one-process one.
            torch.testing.assert_close(got["log_u"], whole["log_u"], rtol=1e-12, atol=1e-12)


# -- training: the state travels in checkpoints ---------------------------------------------

STOP_HOOK = '''
import os, signal
from anymodal import hookimpl

@hookimpl
def anymodal_on_step_end(step, metrics, state):
    if step == int(os.environ.get("STOP_AT_STEP", "-1")):
        os.kill(os.getpid(), signal.SIGKILL)
'''
# 40 rows / batch 8: the resumed part crosses an epoch boundary, so it revisits rows whose
# stored denominators it must have restored.
RESUME = ["objective.name=global_contrastive", "objective.params.gamma=0.5",
          "data.train.size=40", "data.batch_size=8", "train.max_steps=8",
          "train.checkpoint_every=3", "train.deterministic=true", "logging.progress=false",
          "train.eval_every=0", "data.val=null"]


def _weights(run: Path) -> dict[str, torch.Tensor]:
    from safetensors.torch import load_file

    return load_file(str(run / "model" / "model.safetensors"))


def _state_file(checkpoint: Path) -> dict:
    files = sorted(checkpoint.glob("custom_checkpoint_*.pkl"))
    assert len(files) == 1, files
    return torch.load(files[0], weights_only=False)


@pytest.mark.slow
def test_sigkill_then_resume_gives_the_same_weights(tmp_path: Path,
                                                    cli_env: dict[str, str]) -> None:
    from anymodal.config import load_config
    from anymodal.training import train
    from anymodal.training.checkpoint import latest_checkpoint
    from tests.conftest import PYTHON, REPO

    recipe = REPO / "recipes" / "smoke_clip.yaml"
    straight = tmp_path / "straight"
    train(load_config(recipe, [*RESUME, f"train.output_dir={straight}"]))
    saved = _state_file(straight / "checkpoints" / "step_8")
    assert saved["log_u"].shape == (40, 6)  # 40 rows x 3 pairs x 2 directions
    assert torch.isfinite(saved["log_u"]).all()  # 64 rows seen: every row at least once

    (tmp_path / "stop_hook.py").write_text(STOP_HOOK)
    env = {**cli_env, "PYTHONPATH": f"{tmp_path}{os.pathsep}{cli_env.get('PYTHONPATH', '')}",
           "ANYMODAL_PLUGIN_MODULES": "stop_hook", "STOP_AT_STEP": "5"}
    killed = tmp_path / "killed"
    first = subprocess.run([PYTHON, "-m", "anymodal", "train", str(recipe), *RESUME,
                            f"train.output_dir={killed}"], cwd=REPO, env=env,
                           capture_output=True, text=True, timeout=600)
    assert first.returncode == -9, first.stderr[-3000:]
    assert latest_checkpoint(killed) == killed / "checkpoints" / "step_3"
    at_3 = _state_file(killed / "checkpoints" / "step_3")["log_u"]
    assert 0 < int(torch.isfinite(at_3).all(dim=1).sum()) < 40  # some rows seen, not all

    resumed = train(load_config(recipe, [*RESUME, f"train.output_dir={killed}",
                                         "train.resume=auto"]))
    assert resumed.step == 8
    a, b = _weights(straight), _weights(killed)
    for key in a:  # bit-identical
        assert torch.equal(a[key], b[key]), (key, float((a[key] - b[key]).abs().max()))
    assert torch.equal(_state_file(killed / "checkpoints" / "step_8")["log_u"], saved["log_u"])


@pytest.mark.slow
def test_trains_with_gradcache_and_validates(tmp_path: Path) -> None:
    from anymodal.config import load_config
    from anymodal.training import train
    from tests.conftest import REPO

    run = tmp_path / "run"
    result = train(load_config(REPO / "recipes" / "smoke_clip.yaml", [
        "objective.name=global_contrastive", "data.train.size=64", "data.batch_size=16",
        "train.micro_batch=4", "train.max_steps=6", "train.eval_every=3", "data.val.size=32",
        "logging.progress=false", "train.log_every=1", f"train.output_dir={run}"]))
    assert result.step == 6
    lines = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    seen = [line["train/seen_fraction"] for line in lines if "train/seen_fraction" in line]
    # 16 rows of 64 per step: the table fills a quarter per step, then is revisited.
    assert seen[:4] == pytest.approx([0.25, 0.5, 0.75, 1.0])
    assert any(key.endswith("R@1") for key in result.metrics)


@pytest.mark.slow
def test_two_launched_processes_train_like_one(tmp_path: Path, cli_env: dict[str, str]) -> None:
    """``accelerate launch`` with 2 processes of batch 8 against one of batch 16.

    32 rows: step 3 revisits the rows of step 1, so its loss reads the stored state, which
    every process must have updated with the other's rows too.
    """
    from tests.conftest import PYTHON, REPO

    common = ["objective.name=global_contrastive", "data.train.size=32", "train.max_steps=3",
              "train.log_every=1", "logging.progress=false", "data.val=null",
              "train.eval_every=0", "train.checkpoint_every=0"]
    runs = {}
    for label, launcher, batch in (
            ("two", [str(Path(PYTHON).parent / "accelerate"), "launch", "--multi_gpu",
                     "--num_processes", "2", "-m"], 8),
            ("one", [PYTHON, "-m"], 16)):
        out = tmp_path / label
        done = subprocess.run([*launcher, "anymodal", "train", "recipes/smoke_clip.yaml",
                               *common, f"data.batch_size={batch}", f"train.output_dir={out}"],
                              cwd=REPO, env=cli_env, capture_output=True, text=True, timeout=600)
        assert done.returncode == 0, done.stderr[-3000:]
        runs[label] = [json.loads(line) for line in (out / "metrics.jsonl").read_text()
                       .splitlines() if "train/loss" in line]
    assert [r["train/world_size"] for r in runs["two"]] == [2, 2, 2]
    for two, one in zip(runs["two"], runs["one"], strict=True):
        assert two["train/loss"] == pytest.approx(one["train/loss"], abs=1e-5)
        assert two["train/seen_fraction"] == one["train/seen_fraction"]
