"""Rows whose embeddings are not finite (issue 14): found, cut out of the batch, named."""

from __future__ import annotations

import torch
from torch import nn

from anymodal.data.collate import BAD_KEY, BadRow
from anymodal.data.guard import (
    embed_finite,
    finite_rows,
    nonfinite_bad_rows,
    nonfinite_rows,
    running_stats,
    take_rows,
)
from anymodal.types import IDS_KEY, PRESENT_KEY

KEYS = ["a", "b"]


def _batch() -> dict:
    """Five rows; modality b is missing from rows 1 and 3 (its value holds rows 0, 2, 4)."""
    a = torch.arange(5, dtype=torch.float32)[:, None].repeat(1, 3)
    a[2] = 3e38  # row 2's input: finite, but it overflows any encoder that sums it
    return {
        "a": a,
        "b": {"x": torch.tensor([[10.0], [12.0], [14.0]]), "names": ["b0", "b2", "b4"]},
        PRESENT_KEY: {"a": torch.ones(5, dtype=torch.bool),
                      "b": torch.tensor([True, False, True, False, True])},
        IDS_KEY: ["r0", "r1", "r2", "r3", "r4"],
        "labels": torch.tensor([0, 1, 2, 3, 4]),
        BAD_KEY: [BadRow(9, "r9", "x.npy", "broken")],
    }


def test_take_rows_keeps_each_modality_s_present_rows_in_order() -> None:
    kept = take_rows(_batch(), torch.tensor([True, True, False, True, True]), KEYS)
    assert kept[IDS_KEY] == ["r0", "r1", "r3", "r4"]
    assert kept["labels"].tolist() == [0, 1, 3, 4]
    assert kept["a"][:, 0].tolist() == [0.0, 1.0, 3.0, 4.0]
    # b was present in rows 0, 2, 4: without row 2, its value holds rows 0 and 4.
    assert kept["b"]["x"][:, 0].tolist() == [10.0, 14.0]
    assert kept["b"]["names"] == ["b0", "b4"]
    assert kept[PRESENT_KEY]["b"].tolist() == [True, False, False, True]
    assert kept[BAD_KEY] == _batch()[BAD_KEY]  # bad rows are not rows of the batch


def test_nonfinite_rows_flags_rows_and_modalities() -> None:
    embeddings = {"a": torch.zeros(4, 2), "b": torch.zeros(4, 2)}
    assert nonfinite_rows(embeddings, KEYS) is None
    embeddings["a"][1, 0] = float("nan")
    embeddings["b"][3, 1] = float("inf")
    flags = nonfinite_rows(embeddings, [*KEYS, "c"])  # c: not in the batch
    assert flags is not None
    assert flags.tolist() == [[False, False, False], [True, False, False],
                              [False, False, False], [False, True, False]]


class _SumEncoder(nn.Module):
    """Embeds modality a of a batch; a row of 3e38 overflows its sum to infinity.

    A BatchNorm normalises the (finite) labels beside it; ``mix=True`` feeds it the sum
    instead, so that one row's overflow spreads to every row of the batch.
    """

    def __init__(self, mix: bool = False) -> None:
        super().__init__()
        self.norm, self.mix = nn.BatchNorm1d(1), mix

    def forward(self, batch: dict) -> dict[str, torch.Tensor]:
        total = batch["a"].sum(dim=1, keepdim=True) * 4.0
        side = total if self.mix else batch["labels"].float()[:, None]
        return {"a": torch.cat([total, self.norm(side)], dim=1)}


def test_embed_finite_drops_the_overflowing_row_and_restores_batchnorm() -> None:
    encoder = _SumEncoder().train()
    batch = _batch()
    kept, embeddings, flags = embed_finite(encoder, batch, encoder, KEYS)
    assert flags is not None and flags[:, 0].tolist() == [False, False, True, False, False]
    assert kept[IDS_KEY] == ["r0", "r1", "r3", "r4"]
    assert torch.isfinite(embeddings["a"]).all()
    # The statistics are those of one pass over the kept rows, not of both passes.
    twin = _SumEncoder().train()
    twin(take_rows(batch, torch.tensor([True, True, False, True, True]), KEYS))
    torch.testing.assert_close(encoder.norm.running_mean, twin.norm.running_mean)
    torch.testing.assert_close(encoder.norm.running_var, twin.norm.running_var)
    assert int(encoder.norm.num_batches_tracked) == 1


def test_a_batchnorm_that_spreads_the_overflow_keeps_its_statistics() -> None:
    # Every row is NaN (nothing to cut: the step will be skipped), but the running
    # statistics are not left poisoned for evaluation and inference.
    encoder = _SumEncoder(mix=True).train()
    kept, _, flags = embed_finite(encoder, _batch(), encoder, KEYS)
    assert flags is not None and bool(flags[:, 0].all())
    assert kept[IDS_KEY] == ["r0", "r1", "r2", "r3", "r4"]
    assert encoder.norm.running_mean.tolist() == [0.0]
    assert encoder.norm.running_var.tolist() == [1.0]


def test_rows_are_kept_when_fewer_than_two_finite_rows_would_remain() -> None:
    # Nearly every row non-finite: the model (not the rows) is at fault; nothing is cut.
    flags = torch.tensor([[True], [True], [False]])
    assert finite_rows({"a": torch.zeros(3, 1)}, flags, ["a"], []) is None


def test_running_stats_is_empty_for_a_model_without_batchnorm() -> None:
    assert running_stats(nn.Sequential(nn.Linear(2, 2), nn.LayerNorm(2))) == []
    assert len(running_stats(nn.BatchNorm1d(3).train())) == 3  # mean, var, count
    assert running_stats(nn.BatchNorm1d(3).eval()) == []  # eval mode does not update them


def test_nonfinite_bad_rows_name_the_row_modality_and_input_size() -> None:
    batch = _batch()
    flags = torch.zeros(5, 2, dtype=torch.bool)
    flags[2, 0] = True
    flags[4, 1] = True
    rows = nonfinite_bad_rows(batch, flags, KEYS)
    assert [r.id for r in rows] == ["r2", "r4"]
    assert "embedding of a (input max |x| = 3e+38)" in rows[0].reason
    assert "embedding of b (input max |x| = 14)" in rows[1].reason  # b's third item
    assert rows[0].index != rows[1].index and rows[0].index < 0  # no "rows" entry here
    batch["rows"] = torch.tensor([40, 41, 42, 43, 44])
    assert [r.index for r in nonfinite_bad_rows(batch, flags, KEYS)] == [42, 44]
