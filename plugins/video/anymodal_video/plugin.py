"""The hookimpls of anymodal-video (entry point ``video`` in the group ``anymodal``)."""

from __future__ import annotations

from typing import Any

from anymodal import EncoderSpec, hookimpl
from anymodal_video.encoders import FramesMean, FramesMeanConfig, TimeSformer, TimeSformerConfig
from anymodal_video.modality import make_video_modality
from anymodal_video.checks import anymodal_register_doctor_checks  # noqa: F401  (a hook)


@hookimpl
def anymodal_register_modalities(register: Any) -> None:
    register(make_video_modality())


@hookimpl
def anymodal_register_encoders(register: Any) -> None:
    register(EncoderSpec("video_timesformer_tiny", "video", TimeSformer, TimeSformerConfig,
                         "tiny TimeSformer: divided space-time attention over frame patches"))
    register(EncoderSpec("video_frames_mean", "video", FramesMean, FramesMeanConfig,
                         "small 2-D CNN on each frame, pooled over time"))
