"""Metrics on hand-made cases: ties, several positives, k larger than the corpus."""

from __future__ import annotations

import math

import pytest
import torch

from anymodal.retrieval.metrics import (
    alignment,
    average_precision,
    first_positive_rank,
    mean_average_precision,
    median_rank,
    mrr,
    positive_ranks,
    positives_from_labels,
    recall_at_k,
    retrieval_metrics,
    uniformity,
    zero_shot_accuracy,
)


def t(rows: list[list[float]]) -> torch.Tensor:
    return torch.tensor(rows, dtype=torch.float32)


def b(rows: list[list[int]]) -> torch.Tensor:
    return torch.tensor(rows, dtype=torch.bool)


def test_ranks_of_a_simple_case() -> None:
    scores = t([[0.9, 0.1, 0.5, 0.3],   # positive 0 is first
                [0.9, 0.1, 0.5, 0.3],   # positive 2 is second
                [0.9, 0.1, 0.5, 0.3]])  # positive 1 is last
    positives = b([[1, 0, 0, 0], [0, 0, 1, 0], [0, 1, 0, 0]])
    assert first_positive_rank(scores, positives).tolist() == [1, 2, 4]
    assert recall_at_k(scores, positives, (1, 2, 3, 4)) == {
        1: pytest.approx(1 / 3), 2: pytest.approx(2 / 3), 3: pytest.approx(2 / 3), 4: 1.0}
    assert median_rank(scores, positives) == 2.0
    assert mrr(scores, positives) == pytest.approx((1 + 1 / 2 + 1 / 4) / 3)
    # One positive each: AP = 1 / rank.
    assert mean_average_precision(scores, positives) == pytest.approx((1 + 1 / 2 + 1 / 4) / 3)


def test_ties_are_pessimistic() -> None:
    # Every candidate scores the same: the positive comes after every negative.
    scores = torch.zeros(2, 5)
    positives = b([[0, 0, 1, 0, 0], [1, 1, 0, 0, 0]])
    assert first_positive_rank(scores, positives).tolist() == [5, 4]
    assert recall_at_k(scores, positives, (1, 4))[1] == 0.0
    # A negative tied with the positive goes ahead; a lower one does not.
    scores = t([[0.5, 0.5, 0.2]])
    assert first_positive_rank(scores, b([[1, 0, 0]])).tolist() == [2]
    assert first_positive_rank(scores, b([[0, 1, 0]])).tolist() == [2]
    # Positives tied with each other do not push each other down.
    ranks, valid = positive_ranks(t([[0.5, 0.5, 0.2]]), b([[1, 1, 0]]))
    assert ranks.tolist() == [[1, 2]] and valid.all()
    assert average_precision(t([[0.5, 0.5, 0.2]]), b([[1, 1, 0]])).tolist() == [1.0]


def test_several_positives_average_precision() -> None:
    # Ranking: c0(+) c1(-) c2(+) c3(-) c4(+): precisions 1/1, 2/3, 3/5.
    scores = t([[5.0, 4.0, 3.0, 2.0, 1.0]])
    positives = b([[1, 0, 1, 0, 1]])
    assert average_precision(scores, positives).item() == pytest.approx((1 + 2 / 3 + 3 / 5) / 3)
    ranks, _ = positive_ranks(scores, positives)
    assert ranks.tolist() == [[1, 3, 5]]
    # The best positive decides recall and MRR.
    assert first_positive_rank(scores, positives).tolist() == [1]
    # A tie between a positive and a negative: the negative first.
    scores = t([[1.0, 1.0, 0.0]])
    assert average_precision(scores, b([[1, 0, 1]])).item() == pytest.approx((1 / 2 + 2 / 3) / 2)


def test_queries_with_different_numbers_of_positives() -> None:
    scores = t([[0.1, 0.9, 0.8, 0.7], [0.4, 0.3, 0.2, 0.1]])
    positives = b([[1, 1, 1, 0], [0, 0, 0, 1]])
    ranks, valid = positive_ranks(scores, positives)
    assert valid.tolist() == [[True, True, True], [True, False, False]]
    assert ranks[0].tolist() == [1, 2, 4]
    assert ranks[1, 0].item() == 4
    ap = average_precision(scores, positives)
    assert ap.tolist() == pytest.approx([(1 + 1 + 3 / 4) / 3, 1 / 4])


def test_k_larger_than_the_corpus() -> None:
    scores = t([[0.3, 0.2, 0.1]])
    positives = b([[0, 0, 1]])
    assert recall_at_k(scores, positives, (1, 10, 1000)) == {1: 0.0, 10: 1.0, 1000: 1.0}
    assert zero_shot_accuracy(t([[0.1, 0.9]]), torch.tensor([0]), (1, 5)) == {1: 0.0, 5: 1.0}


def test_retrieval_metrics_bundle() -> None:
    scores = t([[0.9, 0.1], [0.2, 0.8], [0.7, 0.3]])
    positives = b([[1, 0], [0, 1], [0, 1]])
    m = retrieval_metrics(scores, positives, ks=(1, 2))
    assert m["R@1"] == pytest.approx(2 / 3) and m["R@2"] == 1.0
    assert m["median_rank"] == 1.0
    assert m["MRR"] == pytest.approx((1 + 1 + 0.5) / 3)
    assert m["mAP"] == pytest.approx((1 + 1 + 0.5) / 3)
    assert m["queries"] == 3 and m["candidates"] == 2


def test_median_of_an_even_count() -> None:
    scores = t([[1, 0, 0, 0], [0, 1, 0, 0], [0, 0, 0, 1], [0, 0, 0, 1]])
    positives = b([[1, 0, 0, 0], [0, 1, 0, 0], [0, 0, 1, 0], [1, 0, 0, 0]])
    # Ranks 1, 1, 4 (ties with two zeros and the 1), 4.
    assert first_positive_rank(scores, positives).tolist() == [1, 1, 4, 4]
    assert median_rank(scores, positives) == 2.5


def test_bad_inputs_are_refused() -> None:
    with pytest.raises(ValueError, match="no positive"):
        recall_at_k(t([[0.1, 0.2]]), b([[0, 0]]))
    with pytest.raises(ValueError, match="shape"):
        mrr(t([[0.1, 0.2]]), b([[1, 0, 0]]))
    with pytest.raises(ValueError, match="NaN"):
        mrr(t([[math.nan, 0.2]]), b([[1, 0]]))
    with pytest.raises(ValueError, match="k must be"):
        recall_at_k(t([[0.1, 0.2]]), b([[1, 0]]), (0,))
    with pytest.raises(ValueError, match="labels"):
        zero_shot_accuracy(t([[0.1, 0.2]]), torch.tensor([2]))


def test_zero_shot_accuracy() -> None:
    scores = t([[0.9, 0.1, 0.0], [0.1, 0.2, 0.3], [0.5, 0.5, 0.1]])
    labels = torch.tensor([0, 0, 1])
    # Row 1: class 0 is last (rank 3); row 2: class 1 ties with class 0 -> rank 2.
    assert zero_shot_accuracy(scores, labels, (1, 2, 3)) == {
        1: pytest.approx(1 / 3), 2: pytest.approx(2 / 3), 3: 1.0}


def test_positives_from_labels() -> None:
    p = positives_from_labels(torch.tensor([1, 2]), torch.tensor([2, 1, 1]))
    assert p.tolist() == [[False, True, True], [True, False, False]]


def test_alignment_and_uniformity() -> None:
    x = torch.nn.functional.normalize(torch.randn(64, 8, generator=torch.Generator()
                                                  .manual_seed(0)), dim=-1)
    assert alignment(x, x) == 0.0
    assert alignment(x, -x) == pytest.approx(4.0)  # |2x|^2
    # Two antipodal points: |x_i - x_j|^2 = 4, so uniformity = -2 * 4.
    pair = torch.tensor([[1.0, 0.0], [-1.0, 0.0]])
    assert uniformity(pair) == pytest.approx(-8.0)
    # Identical points are the least uniform possible: log 1 = 0.
    assert uniformity(torch.tensor([[1.0, 0.0], [1.0, 0.0], [1.0, 0.0]])) == pytest.approx(0.0)
    assert uniformity(x) < -1.0
    with pytest.raises(ValueError):
        uniformity(x[:1])
