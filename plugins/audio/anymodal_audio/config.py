"""Options of the ``audio`` modality (bound with ``anymodal.get_modality("audio", **options)``)."""

from __future__ import annotations

from dataclasses import dataclass

from anymodal import ConfigError

__all__ = ["FEATURE_KINDS", "AudioConfig", "validate_audio_config"]

FEATURE_KINDS = ("fbank", "melspec")


@dataclass
class AudioConfig:
    """Options of the audio modality.

    The defaults follow the ImageBind/AST audio recipe: 16 kHz mono, 128-bin Kaldi log-mel
    fbank with a 25 ms window and a 10 ms shift, 2 s clips (3 clips averaged in evaluation),
    and the AudioSet normalisation statistics. A CPU recipe can shrink ``clip_seconds`` and
    ``n_mels``.

    Args:
        sample_rate: rate every waveform is resampled to, in Hz.
        clip_seconds: length of one clip; longer audio is cropped (random crop in training,
            centre crop or several clips in evaluation).
        eval_clips: in evaluation, audio longer than one clip gives this many evenly spaced
            clips (they may overlap); the encoders average their embeddings.
        pad_to_clip: zero-pad the features of short audio to a full clip in ``transform``
            (AST style). When False, short items keep their length and the batch mask marks
            the padding that ``collate`` adds, so no encoder ever sees it.
        features: ``"fbank"`` (``torchaudio.compliance.kaldi.fbank``, htk-compatible,
            Hanning window) or ``"melspec"`` (``torchaudio.transforms.MelSpectrogram``, log).
        n_mels: mel bins.
        frame_shift_ms: hop between frames.
        frame_length_ms: analysis window.
        mean: subtracted from the log-mel features.
        std: the features are divided by it. -4.268 and 9.138 are AudioSet's statistics
            as used by ImageBind (AST writes the same as ``std=4.569`` divided by 2).
        freq_mask: SpecAugment, training only: widest frequency mask, in bins (0: off).
        time_mask: SpecAugment, training only: widest time mask, in frames (0: off).
        num_freq_masks: frequency masks per item.
        num_time_masks: time masks per item.
        num_classes: classes of the synthetic data (3 sound kinds x ``num_classes // 3``
            pitches).
        processor: a Hugging Face audio model (local folder or hub id) whose own feature
            extractor turns each clip into its inputs (``input_values`` of wav2vec2/HuBERT,
            ``input_features`` of AST/Whisper) instead of the log-mel features above;
            ``audio_hf`` loads that model by default. ``sample_rate`` must be its rate.
    """

    sample_rate: int = 16000
    clip_seconds: float = 2.0
    eval_clips: int = 3
    pad_to_clip: bool = False
    features: str = "fbank"
    n_mels: int = 128
    frame_shift_ms: float = 10.0
    frame_length_ms: float = 25.0
    mean: float = -4.268
    std: float = 9.138
    freq_mask: int = 24
    time_mask: int = 40
    num_freq_masks: int = 1
    num_time_masks: int = 1
    num_classes: int = 12
    processor: str | None = None

    @property
    def clip_samples(self) -> int:
        """Samples in one clip."""
        return round(self.clip_seconds * self.sample_rate)

    @property
    def window_samples(self) -> int:
        """Samples in one analysis window."""
        return round(self.frame_length_ms * self.sample_rate / 1000)

    @property
    def hop_samples(self) -> int:
        """Samples between two frames."""
        return round(self.frame_shift_ms * self.sample_rate / 1000)


def validate_audio_config(config: AudioConfig) -> AudioConfig:
    """Raise :class:`anymodal.ConfigError` naming the first option out of range."""
    checks = [
        (config.sample_rate > 0, "sample_rate must be > 0"),
        (config.clip_seconds > 0, "clip_seconds must be > 0"),
        (config.eval_clips >= 1, "eval_clips must be >= 1"),
        (config.features in FEATURE_KINDS, f"features must be one of {FEATURE_KINDS}"),
        (config.n_mels > 0, "n_mels must be > 0"),
        (config.frame_shift_ms > 0, "frame_shift_ms must be > 0"),
        (config.frame_length_ms >= config.frame_shift_ms,
         "frame_length_ms must be >= frame_shift_ms"),
        (config.std > 0, "std must be > 0"),
        (min(config.freq_mask, config.time_mask) >= 0, "freq_mask and time_mask must be >= 0"),
        (min(config.num_freq_masks, config.num_time_masks) >= 0,
         "num_freq_masks and num_time_masks must be >= 0"),
        (config.num_classes >= 1, "num_classes must be >= 1"),
        (config.clip_samples >= config.window_samples,
         "clip_seconds must hold at least one analysis window (frame_length_ms)"),
    ]
    for ok, message in checks:
        if not ok:
            raise ConfigError(f"modality 'audio': {message} (got {config})")
    return config
