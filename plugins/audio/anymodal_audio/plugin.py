"""The hookimpls of anymodal-audio (entry point ``audio`` in the group ``anymodal``)."""

from __future__ import annotations

from typing import Any

from anymodal import EncoderSpec, hookimpl
from anymodal_audio.encoders import AudioAST, AudioASTConfig, AudioCNN, AudioCNNConfig
from anymodal_audio.modality import make_audio_modality
from anymodal_audio.checks import anymodal_register_doctor_checks  # noqa: F401  (a hook)


@hookimpl
def anymodal_register_modalities(register: Any) -> None:
    register(make_audio_modality())


@hookimpl
def anymodal_register_encoders(register: Any) -> None:
    register(EncoderSpec("audio_ast_tiny", "audio", AudioAST, AudioASTConfig,
                         "tiny Audio Spectrogram Transformer over log-mel patches"))
    register(EncoderSpec("audio_cnn_small", "audio", AudioCNN, AudioCNNConfig,
                         "small VGG-style CNN over log-mel features"))
