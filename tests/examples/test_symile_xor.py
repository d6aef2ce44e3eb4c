"""Tests of ``examples/symile_xor.py``: the data generator, the optimum, the evaluation
path (a hand-built Symile model solves the task exactly) and a ``--quick`` run."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from types import ModuleType

import pytest
import torch

import anymodal
from tests.examples.conftest import example_module


@pytest.fixture(scope="module")
def xor() -> Iterator[ModuleType]:
    with example_module("symile_xor.py") as module:
        yield module


def test_optimum_formula(xor: ModuleType) -> None:
    assert xor.optimum(1.0, 5) == 1.0
    assert xor.optimum(0.0, 5) == pytest.approx(1 / 32)
    assert xor.optimum(0.5, 3) == pytest.approx(0.5 + 0.5 / 8)
    assert xor.optimum(0.2, 5) == pytest.approx(0.2 + 0.8 / 32)


@pytest.mark.parametrize("p", [0.0, 0.3, 1.0])
def test_xor_data_follows_the_definition(xor: ModuleType, p: float) -> None:
    data = xor.xor_data(4000, 5, p, torch.Generator().manual_seed(3))
    a, b, c, i = data["a"], data["b"], data["c"], data["i"]
    assert a.shape == b.shape == c.shape == (4000, 5) and i.shape == (4000,)
    assert i.dtype == torch.bool
    for bits in (a, b, c):
        assert set(bits.unique().tolist()) <= {0, 1}
    assert torch.equal(c[i], a[i] ^ b[i])  # c = a XOR b where i = 1
    assert torch.equal(c[~i], a[~i])  # c = a where i = 0
    assert abs(i.float().mean().item() - p) < 0.03
    assert abs(b.float().mean().item() - 0.5) < 0.02


def test_xor_data_is_deterministic_under_a_seed(xor: ModuleType) -> None:
    first = xor.xor_data(50, 4, 0.5, torch.Generator().manual_seed(7))
    second = xor.xor_data(50, 4, 0.5, torch.Generator().manual_seed(7))
    other = xor.xor_data(50, 4, 0.5, torch.Generator().manual_seed(8))
    assert all(torch.equal(first[k], second[k]) for k in first)
    assert not torch.equal(first["a"], other["a"])


def test_every_pair_is_independent_at_p_one(xor: ModuleType) -> None:
    """Why pairwise objectives cannot win: at p = 1, c carries no information about b
    alone (nor about a alone); only the triple does."""
    data = xor.xor_data(20000, 3, 1.0, torch.Generator().manual_seed(0))
    b, c = data["b"].float(), data["c"].float()
    for j in range(3):
        for value in (0, 1):
            given = c[:, j][data["b"][:, j] == value]
            assert abs(given.mean().item() - 0.5) < 0.02
    corr = torch.corrcoef(torch.cat([b, c], dim=1).T)[:3, 3:]
    assert corr.abs().max() < 0.03


def test_all_candidates_are_every_binary_vector(xor: ModuleType) -> None:
    candidates = xor.all_candidates(4)
    assert candidates.shape == (16, 4)
    assert set(candidates.unique().tolist()) == {0, 1}
    assert len({tuple(row) for row in candidates.tolist()}) == 16
    assert candidates[5].tolist() == [0, 1, 0, 1]


def test_a_hand_built_symile_model_solves_p_one(xor: ModuleType) -> None:
    """Linear encoders with f_a = a, f_b = b, f_c = -c on ±1 inputs make the multilinear
    inner product sum_j a_j b'_j a_j b_j, largest exactly at b' = b: the evaluation, which
    ranks with the model's (Symile's) own score, must give accuracy 1."""
    d = 5
    budget = xor.Budget(embed_dim=d, hidden=d, depth=0)
    model = anymodal.MultiModalModel(xor.make_config("symile", {}, d, budget))
    with torch.no_grad():
        for key, sign in (("a", 1.0), ("b", 1.0), ("c", -1.0)):
            layer = model.encoders[key].net[0]
            layer.weight.copy_(sign * torch.eye(d))
            layer.bias.zero_()
            model.heads[key].net.weight.copy_(torch.eye(d))
    test = xor.xor_data(300, d, 1.0, torch.Generator().manual_seed(1))
    assert xor.accuracy(model.eval(), test) == 1.0
    # The same embeddings ranked by CLIP's summed similarity do not solve it.
    clip = anymodal.MultiModalModel(xor.make_config("clip", {}, d, budget))
    # Symile's own state (its permutation generator) has no counterpart in CLIP.
    towers = {k: v for k, v in model.state_dict().items() if not k.startswith("objective.")}
    clip.load_state_dict(towers)
    assert xor.accuracy(clip.eval(), test) < 0.5


def test_run_study_shapes_and_table(xor: ModuleType, one_thread: None) -> None:
    budget = xor.Budget(steps=2, batch_size=16, n_train=64, n_test=40, hidden=8, embed_dim=8)
    lines: list[str] = []
    result = xor.run_study(3, 2, budget, ps=(0.0, 1.0), log=lines.append)
    labels = [label for label, _, _ in xor.OBJECTIVES]
    assert result.labels == labels and result.ps == [0.0, 1.0]
    assert len(lines) == 2 * 2 * len(labels)
    for label in labels:
        acc = result.accuracy[label]
        assert acc.shape == (2, 2)
        assert ((acc >= 0) & (acc <= 1)).all()
        # 40 test rows: every accuracy is a multiple of 1/40.
        assert (abs(acc * 40 - (acc * 40).round()) < 1e-9).all()
        assert result.seconds[label] > 0
    assert result.optimum == [pytest.approx(1 / 8), 1.0]
    table = xor.format_table(result).splitlines()
    assert table[0] == "| p | " + " | ".join(labels) + " | optimum |"
    assert len(table) == 2 + 2
    assert table[-1].startswith("| 1.0 |") and table[-1].endswith("| 1.000 |")
    assert table[2].count("±") == len(labels)


@pytest.mark.slow
def test_quick_run_writes_the_report_and_symile_beats_clip(
    xor: ModuleType, tmp_path: Path, capsys: pytest.CaptureFixture[str], one_thread: None
) -> None:
    # main() sets one torch thread; the fixture restores the caller's count afterwards.
    result = xor.main(["--quick", "--seeds", "1", "--out-dir", str(tmp_path)])
    labels = [label for label, _, _ in xor.OBJECTIVES]
    assert result.ps == list(xor.QUICK_PS) and result.labels == labels
    for label in labels:
        assert result.accuracy[label].shape == (len(xor.QUICK_PS), 1)
        assert ((result.accuracy[label] >= 0) & (result.accuracy[label] <= 1)).all()
    last = len(result.ps) - 1  # p = 1
    assert result.ps[last] == 1.0
    clip = result.accuracy["clip"][last, 0]
    # Measured over 5 seeds at this budget: Symile >= 0.9, CLIP <= 0.05 (chance 1/32).
    for label in ("symile (n)", "symile (n_squared)"):
        assert result.accuracy[label][last, 0] > clip + 0.4
    markdown = (tmp_path / "study_xor.md").read_text()
    assert "| p | clip |" in markdown and "![XOR](" in markdown
    assert "--quick" in markdown
    assert (tmp_path / "study_xor.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert "| 1.0 |" in capsys.readouterr().out


def test_summary_classifies_each_objective(xor: ModuleType) -> None:
    import numpy as np

    ps = [0.0, 0.5, 1.0]
    result = xor.StudyResult(d=2, ps=ps, labels=["flat", "best", "mid"],
                             optimum=[xor.optimum(p, 2) for p in ps])
    result.accuracy = {
        "flat": np.full((3, 2), 0.26),
        "best": np.array([[0.25, 0.25], [0.60, 0.62], [0.99, 1.0]]),
        "mid": np.array([[0.25, 0.25], [0.40, 0.40], [0.25, 0.25]]),
    }
    flat, best, mid = xor.summarise(result)
    assert flat.startswith("- `flat`: at chance")
    assert best.startswith("- `best`: within 0.05 of the optimum")
    assert "gap 0.015, at p = 0.5" in best
    assert "in between: best 0.400 at p = 0.5" in mid and "0.750 at p = 1.0" in mid
