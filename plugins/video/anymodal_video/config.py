"""Options of the ``video`` modality (bound with ``anymodal.get_modality("video", **options)``)."""

from __future__ import annotations

from dataclasses import dataclass

from anymodal import ConfigError

__all__ = ["CROPS", "SAMPLINGS", "VideoConfig", "validate_video_config"]

SAMPLINGS = ("uniform", "fps")
CROPS = ("random", "center")

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


@dataclass
class VideoConfig:
    """Options of the video modality.

    The defaults are the usual clip recipe: 8 frames, short side scaled to 256 and a
    224x224 crop, ImageNet normalisation. A CPU recipe can shrink ``size`` (e.g. 32 or 64)
    and ``num_frames``.

    Args:
        num_frames: frames per clip. A video with fewer frames repeats frames.
        size: side of the square crop.
        sampling: ``"uniform"``: ``num_frames`` equal segments over the whole video, one
            frame per segment (its centre; a random frame of it in training, as in TSN);
            ``"fps"``: consecutive frames at ``fps`` frames a second from a window at the
            centre (a random window in training).
        fps: frame rate of ``"fps"`` sampling; also the rate assumed for frame arrays.
        jitter: random segment offsets / window start in training (False: as in eval).
        short_side: frames are scaled so that their short side is this (0: ``size`` * 256 /
            224, i.e. 256 for 224).
        max_scale: training scale jitter: the short side is drawn in
            ``[short_side, short_side * max_scale]`` (1.0: off).
        train_crop: ``"random"`` or ``"center"`` crop in training (eval is always centre).
        flip: random horizontal flip of the whole clip in training.
        mean: per-channel mean subtracted from frames in [0, 1].
        std: per-channel std the frames are divided by.
        decode_threads: FFmpeg decoding threads per video (0: FFmpeg's choice; 1 suits
            DataLoader workers, which already decode in parallel).
        num_classes: classes of the synthetic data (2 shapes x 4 directions of motion).
        max_pixels: a video whose frames have more pixels (width x height) is a bad item,
            refused from its container header before any frame is decoded (as the image
            modality's option of that name; ``0``: no limit). For containers whose header
            is not read (only mp4/mov and Matroska/WebM are), the first decoded frame is
            checked before any other.
        processor: a Hugging Face video model (local folder or hub id, e.g. VideoMAE)
            whose own image processor prepares the sampled frames instead of the scaling,
            cropping and normalisation above (only ``flip`` still applies in training);
            ``video_hf`` loads that model by default.
    """

    num_frames: int = 8
    size: int = 224
    sampling: str = "uniform"
    fps: float = 4.0
    jitter: bool = True
    short_side: int = 0
    max_scale: float = 1.0
    train_crop: str = "random"
    flip: bool = True
    mean: tuple[float, float, float] = IMAGENET_MEAN
    std: tuple[float, float, float] = IMAGENET_STD
    decode_threads: int = 1
    num_classes: int = 8
    max_pixels: int = 50_000_000
    processor: str | None = None

    @property
    def resize_to(self) -> int:
        """The short side frames are scaled to before cropping (eval)."""
        return self.short_side or round(self.size * 256 / 224)


def validate_video_config(config: VideoConfig) -> VideoConfig:
    """Raise :class:`anymodal.ConfigError` naming the first option out of range."""
    checks = [
        (config.num_frames >= 1, "num_frames must be >= 1"),
        (config.size >= 1, "size must be >= 1"),
        (config.sampling in SAMPLINGS, f"sampling must be one of {SAMPLINGS}"),
        (config.fps > 0, "fps must be > 0"),
        (config.short_side == 0 or config.short_side >= config.size,
         "short_side must be 0 (automatic) or >= size"),
        (config.max_scale >= 1.0, "max_scale must be >= 1.0"),
        (config.train_crop in CROPS, f"train_crop must be one of {CROPS}"),
        (len(config.mean) == 3 and len(config.std) == 3, "mean and std need 3 values"),
        (min(config.std) > 0, "std values must be > 0"),
        (config.decode_threads >= 0, "decode_threads must be >= 0"),
        (config.num_classes >= 1, "num_classes must be >= 1"),
        (config.max_pixels >= 0, "max_pixels must be >= 0 (0: no limit)"),
    ]
    for ok, message in checks:
        if not ok:
            raise ConfigError(f"modality 'video': {message} (got {config})")
    return config
