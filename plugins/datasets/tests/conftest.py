"""Fixtures: one small ``digits`` build shared by the tests that only read it."""

from __future__ import annotations

from pathlib import Path

import pytest

import anymodal

LIMIT = 12


@pytest.fixture(scope="session")
def built(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """``digits`` with all six modalities for the first 12 samples, built in this process.

    Tests that change a build copy it first: this folder is shared.
    """
    out = tmp_path_factory.mktemp("digits") / "full"
    manifest = anymodal.build_dataset_files("digits", out, limit=LIMIT, workers=1,
                                            progress=False)
    assert manifest == out / "manifest.jsonl"
    return out
