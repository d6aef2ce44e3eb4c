"""A float WAV whose samples overflow the features is a named bad row (issue 14)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import soundfile

import anymodal
from anymodal.data.collate import BadRow
from anymodal.data.manifest import ManifestDataset


def test_samples_of_1e30_make_a_bad_row_not_a_nan_fbank(tmp_path: Path) -> None:
    # issue 14: a float WAV with samples of 1e30 gave an all-NaN fbank, silently.
    soundfile.write(tmp_path / "loud.wav", np.full(16000, 1e30, dtype=np.float32), 16000,
                    subtype="FLOAT")
    (tmp_path / "m.jsonl").write_text(json.dumps({"a": "loud.wav"}) + "\n")
    spec = anymodal.get_modality("audio", clip_seconds=1.0, n_mels=32)
    row = ManifestDataset(tmp_path / "m.jsonl", {"a": spec}, on_error="skip")[0]
    assert isinstance(row, BadRow)
    assert "loud.wav" in row.source and "NaN or infinite values after its transform" in row.reason
