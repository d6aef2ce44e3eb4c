"""The ``audio`` modality and its encoders (entry point ``audio`` in the group ``anymodal``).

Importing this module is cheap: torchaudio, soundfile and decord are imported inside the
functions that read or transform audio.
"""

from __future__ import annotations

from anymodal import define_modality, plugin_hooks
from anymodal_audio.checks import anymodal_register_doctor_checks  # noqa: F401  (a hook)
from anymodal_audio.collate import collate_audio
from anymodal_audio.config import AudioConfig, validate_audio_config
from anymodal_audio.encoders import AudioAST, AudioCNN
from anymodal_audio.encoders.hf import HFAudioEncoder
from anymodal_audio.io import load_audio
from anymodal_audio.synthetic import synthesize_audio
from anymodal_audio.transforms import prepare_audio, transform_audio

__all__ = ["AUDIO", "anymodal_register_encoders", "anymodal_register_modalities"]

AUDIO = define_modality(
    "audio", AudioConfig, load=load_audio, transform=transform_audio, collate=collate_audio,
    synthesize=synthesize_audio, validate=validate_audio_config, default_encoder="audio_ast_tiny",
    prepare=prepare_audio,
    description="audio files and video soundtracks as log-mel features (fbank/melspec)",
)

anymodal_register_modalities, anymodal_register_encoders = plugin_hooks(
    modalities=[AUDIO], encoders=[AudioAST, AudioCNN, HFAudioEncoder])
