"""``examples/compare_objectives.py`` on its real modalities (image, audio, text) and the digits
data set: configs and a ``--quick`` run (real files, real training loop).

(Moved from ``tests/examples/test_compare_objectives.py``, which runs without plugins.)
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType

import numpy as np
import pytest

from tests.examples.conftest import example_module, one_thread  # noqa: F401 (a fixture)


@pytest.fixture(scope="module")
def study() -> Iterator[ModuleType]:
    with example_module("compare_objectives.py") as module:
        yield module


def test_every_objective_config_is_valid_and_differs_only_in_the_objective(
        study: ModuleType, tmp_path: Path) -> None:
    budget = study.Budget(steps=7)
    configs = {label: study.make_config(name, params, 2, tmp_path / "train.jsonl", budget, 32,
                                        tmp_path / label)
               for label, name, params in study.OBJECTIVES}
    assert len(configs) == 11
    assert configs["dclw"].objective.params.weighted is True
    assert configs["clip (anchor text)"].objective.params.anchor == "text"
    assert configs["symile (n_squared)"].objective.params.negatives == "n_squared"
    assert configs["symile (n)"].objective.params.seed == 2
    first = configs["clip (all pairs)"]
    for config in configs.values():
        assert sorted(config.modalities) == ["audio", "image", "text"]
        assert config.train.max_steps == 7 and config.train.seed == 2
        assert config.train.eval_every == 0 and config.data.val is None
        assert config.data.batch_size == 32 and config.logging.progress is False
        for key in ("modalities", "model", "optim", "data", "logging"):
            assert config[key] == first[key]
        assert config.train.modality_dropout.p == 0.0
    on = study.make_config("gram", {}, 0, tmp_path / "train.jsonl", budget, 32, tmp_path,
                           subset_p=study.SUBSET_P)
    assert on.train.modality_dropout.p == study.SUBSET_P


def test_gradcache_rows_differ_from_their_objective_only_by_the_batch(
        study: ModuleType, tmp_path: Path) -> None:
    label, name, params, batch, micro = study.GRADCACHE[0]
    assert label in study.all_labels()
    (run,) = study.variants([label], "both")  # trained without subsets only
    assert (run.name, run.params, run.batch_size, run.micro_batch) == (name, params, batch,
                                                                       micro)
    budget = study.Budget(steps=7)
    big = study.make_config(name, params, 0, tmp_path / "t.jsonl", budget, run.batch_size,
                            tmp_path, micro_batch=run.micro_batch)
    plain = study.make_config(name, params, 0, tmp_path / "t.jsonl", budget, 64, tmp_path)
    assert big.data.batch_size == batch and big.train.micro_batch == micro
    assert plain.train.micro_batch is None
    for key in ("modalities", "model", "optim", "objective"):
        assert big[key] == plain[key]


@pytest.mark.slow
@pytest.mark.usefixtures("one_thread")
def test_quick_run_writes_the_report(study: ModuleType, tmp_path: Path,
                                     capsys: pytest.CaptureFixture[str]) -> None:
    data = tmp_path / "digits"
    out = tmp_path / "results"
    result = study.main(["--quick", "--data", str(data), "--out-dir", str(out)])
    # The data set was really built: three modalities, files on disk.
    row = json.loads((data / "test.jsonl").read_text().splitlines()[0])
    assert (data / row["image"]).is_file() and (data / row["audio"]).is_file()
    assert isinstance(row["text"], str) and row["text"]
    assert result.labels == [label + suffix for label in study.QUICK_OBJECTIVES
                             for suffix in ("", study.SUBSET_SUFFIX)]
    assert result.tasks == list(study.TASKS)
    test_rows = len((data / "test.jsonl").read_text().splitlines())
    for label in result.labels:
        recall = result.recall[label]
        assert recall.shape == (len(study.TASKS), 1)
        assert ((recall >= 0) & (recall <= 1)).all()
        # R@1 over test_rows queries (every test row has all three modalities)
        assert (abs(recall * test_rows - (recall * test_rows).round()) < 1e-6).all()
        assert result.seconds[label].shape == (1,) and (result.seconds[label] > 0).all()
    for task in study.TASKS:
        assert 0 < result.chance[task] <= 1 and result.queries[task] == test_rows
    markdown = (out / "study_objectives.md").read_text()
    assert "--quick" in markdown and "-core CPU (" in markdown
    assert "| objective | audio->image |" in markdown and "| *chance* |" in markdown
    assert markdown.count("±") >= 2 * len(study.TASKS)
    assert (out / "study_objectives.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    printed = capsys.readouterr().out
    assert "| clip (all pairs) |" in printed and "| symile (n) +subsets |" in printed
    # Every run was recorded as it finished; a report-only call tabulates them again.
    assert len((out / "study_objectives.jsonl").read_text().splitlines()) == len(result.labels)
    again = study.main(["--quick", "--data", str(data), "--out-dir", str(out),
                        "--report-only"])
    assert again.labels == result.labels
    for label in result.labels:
        np.testing.assert_array_equal(again.recall[label], result.recall[label])
