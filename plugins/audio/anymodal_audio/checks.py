"""Doctor checks for the audio plugin: torchaudio's compiled extension, libsndfile, decord."""

from __future__ import annotations

import io
from typing import Any

from anymodal import DoctorCheck, hookimpl

# torchaudio's wheel does not pin torch, so a fresh resolver can pair them wrongly.
PAIR_FIX = ("make install (re-syncs .venv to requirements/lock.txt); elsewhere: "
            "pip install 'torch==2.11.0' 'torchaudio==2.11.0' (the pair must match)")


def _torchaudio() -> str:
    import torch
    import torchaudio
    import torchaudio.compliance.kaldi as kaldi

    features = kaldi.fbank(torch.randn(1, 1600), num_mel_bins=23, sample_frequency=16000)
    return f"{torchaudio.__version__} (Kaldi fbank {tuple(features.shape)})"


def _soundfile() -> str:
    import numpy as np
    import soundfile

    buffer = io.BytesIO()
    soundfile.write(buffer, np.zeros(160, dtype="float32"), 16000, format="WAV")
    buffer.seek(0)
    samples, rate = soundfile.read(buffer)
    if rate != 16000 or len(samples) != 160:
        raise RuntimeError(f"a 160-sample WAV read back as {len(samples)} samples at {rate} Hz")
    return f"{soundfile.__version__} (libsndfile {soundfile.__libsndfile_version__})"


def _decord() -> str:
    import decord

    decord.cpu(0)
    return str(decord.__version__)


@hookimpl
def anymodal_register_doctor_checks(register: Any) -> None:
    """Register this plugin's ``anymodal doctor`` checks."""
    register(DoctorCheck("audio: torchaudio", _torchaudio, PAIR_FIX, ("torchaudio", "torch")))
    register(DoctorCheck("audio: soundfile", _soundfile,
                         "make install; elsewhere: pip install soundfile", ("soundfile",)))
    register(DoctorCheck("audio: decord (video soundtracks)", _decord,
                         "make install; elsewhere: pip install decord", ("decord",)))
