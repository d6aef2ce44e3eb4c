"""Encoders of the ``audio`` modality: ``audio_ast_tiny`` and ``audio_cnn_small``."""

from __future__ import annotations

from anymodal_audio.encoders.ast import AudioAST, AudioASTConfig
from anymodal_audio.encoders.cnn import AudioCNN, AudioCNNConfig

__all__ = ["AudioAST", "AudioASTConfig", "AudioCNN", "AudioCNNConfig"]
