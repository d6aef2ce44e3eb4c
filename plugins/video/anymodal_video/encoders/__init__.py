"""Encoders of the ``video`` modality: ``video_timesformer_tiny`` and ``video_frames_mean``."""

from __future__ import annotations

from anymodal_video.encoders.frames_mean import FramesMean, FramesMeanConfig
from anymodal_video.encoders.timesformer import TimeSformer, TimeSformerConfig

__all__ = ["FramesMean", "FramesMeanConfig", "TimeSformer", "TimeSformerConfig"]
