"""The ``video`` modality and its encoders (entry point ``video`` in the group ``anymodal``).

Importing this module is cheap: decord and torchvision are imported inside the functions
that read or transform video.
"""

from __future__ import annotations

from anymodal import define_modality, plugin_hooks
from anymodal_video.checks import anymodal_register_doctor_checks  # noqa: F401  (a hook)
from anymodal_video.collate import collate_video
from anymodal_video.config import VideoConfig, validate_video_config
from anymodal_video.encoders import FramesMean, TimeSformer
from anymodal_video.encoders.hf import HFVideoEncoder
from anymodal_video.io import load_video
from anymodal_video.synthetic import synthesize_video
from anymodal_video.transforms import prepare_video, transform_video

__all__ = ["VIDEO", "anymodal_register_encoders", "anymodal_register_modalities"]

VIDEO = define_modality(
    "video", VideoConfig, load=load_video, transform=transform_video, collate=collate_video,
    synthesize=synthesize_video, validate=validate_video_config,
    default_encoder="video_timesformer_tiny", prepare=prepare_video,
    description="video files (decord) as clips of sampled, cropped, normalised frames",
)

anymodal_register_modalities, anymodal_register_encoders = plugin_hooks(
    modalities=[VIDEO], encoders=[TimeSformer, FramesMean, HFVideoEncoder])
