"""From a waveform to model-ready log-mel features: cropping, features, SpecAugment.

An item is ``[T, n_mels]`` (one clip), or ``[K, T, n_mels]`` when, in evaluation, audio
longer than a clip is cut into ``K = eval_clips`` clips whose embeddings the encoders
average. ``T`` is at most the frames of one clip; shorter audio gives fewer frames (unless
``pad_to_clip``), and ``collate`` pads the batch and says which frames are real.
"""

from __future__ import annotations

import functools
import math
import warnings
from dataclasses import dataclass
from typing import Any

import torch
import torch.nn.functional as F

from anymodal import ConfigError
from anymodal_audio.config import AudioConfig

__all__ = [
    "HF_KEYS",
    "AudioFeatures",
    "clip_frames",
    "crop_clips",
    "crop_starts",
    "extract_features",
    "log_mel",
    "num_frames",
    "prepare_audio",
    "spec_augment",
    "transform_audio",
]


@dataclass
class AudioFeatures:
    """The prepared form of a waveform: normalised log-mel features of all of it.

    What :func:`prepare_audio` returns and the sample cache stores: frames sit on the
    same grid as the crops of :func:`crop_starts`, so ``features[s // hop:][:T]`` is the
    features of the clip that starts at sample ``s`` (Kaldi framing reads no sample
    outside its frame).

    Args:
        features: ``(log_mel - mean) / std`` of the whole waveform.
        num_samples: the waveform's length at the modality's sample rate.

    Shapes:
        features: ``[num_frames(num_samples), n_mels]``.
    """

    features: torch.Tensor
    num_samples: int


def prepare_audio(raw: Any, config: AudioConfig) -> Any:
    """The deterministic prefix of :func:`transform_audio`: features of the whole waveform.

    Returned as it is: a waveform the model's own extractor reads (option ``processor``)
    and a :class:`~anymodal_audio.io.SeekableAudio` (a file too long to featurise whole;
    the sample cache does not store it).

    Shapes:
        raw: ``[N]``; output: :class:`AudioFeatures` ``[num_frames(N), n_mels]``.
    """
    if config.processor or isinstance(raw, AudioFeatures) or not torch.is_tensor(raw):
        return raw
    return AudioFeatures((log_mel(raw, config) - config.mean) / config.std, raw.shape[-1])


def transform_audio(waveform: Any, train: bool, config: AudioConfig) -> Any:
    """Crop ``waveform`` into clip(s) and compute normalised log-mel features.

    Args:
        waveform: mono samples at ``config.sample_rate`` (from ``load``), or their
            :class:`AudioFeatures` (from :func:`prepare_audio`: the same item, the same
            random draws).
        train: random crop and SpecAugment when True; centre crop or ``eval_clips`` evenly
            spaced clips when False.
        config: the modality's options.

    Shapes:
        waveform: ``[N]``; output: ``[T, n_mels]`` or ``[K, T, n_mels]``; with the option
        ``processor``, the dict of :func:`extract_features`.
    """
    if config.processor:
        return extract_features(crop_clips(waveform, train, config), config)
    prepared = waveform if isinstance(waveform, AudioFeatures) else None
    length = prepared.num_samples if prepared is not None else waveform.shape[-1]
    starts = crop_starts(length, train, config)
    items = []
    for start in starts:
        if prepared is not None:
            count = prepared.features.shape[0] if start is None else clip_frames(config)
            first = start // config.hop_samples if start is not None else 0
            feats = prepared.features[first:first + count]
        else:
            clip = waveform if start is None else waveform[start:start + config.clip_samples]
            feats = (log_mel(clip, config) - config.mean) / config.std
        if train:
            feats = spec_augment(feats, config)
        if config.pad_to_clip:
            feats = F.pad(feats, (0, 0, 0, clip_frames(config) - feats.shape[0]))
        items.append(feats)
    return items[0] if len(items) == 1 else torch.stack(items)


_EXTRACTORS: dict[str, Any] = {}
HF_KEYS = ("input_values", "input_features")


def extract_features(clips: list[torch.Tensor], config: AudioConfig) -> dict[str, torch.Tensor]:
    """The model's own feature extractor (``config.processor``) on each clip.

    Returns:
        ``{name: [K, ...]}``: the extractor's input tensor (``input_values`` ``[K, N]`` or
        ``input_features`` ``[K, T, F]``), one row per clip (clips of one item share a
        length).

    Raises:
        ConfigError: the extractor's sampling rate is not the modality's ``sample_rate``.
    """
    if config.processor not in _EXTRACTORS:
        from anymodal.towers import load_hf

        _EXTRACTORS[config.processor] = load_hf(config.processor, "AutoFeatureExtractor",
                                                "modality 'audio' (option processor)")
    extractor = _EXTRACTORS[config.processor]
    rate = getattr(extractor, "sampling_rate", config.sample_rate)
    if rate != config.sample_rate:
        raise ConfigError(f"modality 'audio': the feature extractor of {config.processor} "
                          f"reads {rate} Hz; set the option sample_rate to {rate}")
    rows = []
    for clip in clips:
        out = extractor(clip.numpy(), sampling_rate=rate, return_tensors="pt")
        name = next(key for key in HF_KEYS if key in out)
        rows.append(out[name][0].float())
    return {name: torch.stack(rows)}


def crop_clips(waveform: Any, train: bool, config: AudioConfig) -> list[Any]:
    """The clip(s) of ``waveform`` to featurise; short audio is returned whole.

    Shapes:
        waveform: ``[N]``; output: ``[clip_samples]`` each (the last one of a crop on the
        frame grid may be shorter by less than a frame shift: it still has every frame).
    """
    return [waveform if s is None else waveform[s:s + config.clip_samples]
            for s in crop_starts(waveform.shape[-1], train, config)]


def crop_starts(length: int, train: bool, config: AudioConfig) -> list[int | None]:
    """Start samples of the clip(s) of audio of ``length`` samples (``[None]``: all of it).

    Training takes one random window (global torch RNG, seeded per DataLoader worker);
    evaluation takes the centre window, or ``eval_clips`` windows from start to end.
    Starts fall on the frame grid (multiples of ``hop_samples``, drawn as frames), so a
    clip's features are a slice of the whole waveform's (:func:`prepare_audio`); with a
    ``processor`` (which reads samples, not frames) they are drawn in samples.
    """
    clip = config.clip_samples
    if length <= clip:
        return [None]
    if config.processor:
        unit, last = 1, length - clip
    else:
        unit, last = config.hop_samples, num_frames(length, config) - clip_frames(config)
    if train:
        return [unit * int(torch.randint(0, last + 1, ()).item())]
    if config.eval_clips == 1:
        return [unit * (last // 2)]
    return [unit * s for s in torch.linspace(0, last, config.eval_clips).round().long().tolist()]


def _fft_size(config: AudioConfig) -> int:
    return 2 ** math.ceil(math.log2(config.window_samples))


def _min_samples(config: AudioConfig) -> int:
    """Samples needed for one frame (edges are not padded, as in Kaldi)."""
    return config.window_samples if config.features == "fbank" else _fft_size(config)


def num_frames(num_samples: int, config: AudioConfig) -> int:
    """Frames the features of ``num_samples`` samples have (short audio is padded to one)."""
    return 1 + (max(num_samples, _min_samples(config)) - _min_samples(config)) // (
        config.hop_samples
    )


def clip_frames(config: AudioConfig) -> int:
    """Frames of one full clip: the longest ``T`` an item has."""
    return num_frames(config.clip_samples, config)


def log_mel(clip: torch.Tensor, config: AudioConfig) -> torch.Tensor:
    """Log-mel features of one clip, before normalisation.

    Shapes:
        clip: ``[N]``; output: ``[num_frames(N), n_mels]``.
    """
    short = _min_samples(config) - clip.shape[-1]
    if short > 0:  # shorter than one analysis window: pad with silence to get one frame
        clip = F.pad(clip, (0, short))
    if config.features == "fbank":
        import torchaudio.compliance.kaldi as kaldi

        return kaldi.fbank(
            clip[None], htk_compat=True, sample_frequency=config.sample_rate,
            use_energy=False, window_type="hanning", num_mel_bins=config.n_mels,
            dither=0.0, frame_shift=config.frame_shift_ms, frame_length=config.frame_length_ms,
        )
    mel = _mel_spectrogram(config.sample_rate, _fft_size(config), config.window_samples,
                           config.hop_samples, config.n_mels)(clip)
    # Same floor as Kaldi's log (float32 epsilon), so the two feature kinds share statistics.
    return mel.clamp_min(torch.finfo(torch.float32).eps).log().transpose(0, 1)


@functools.lru_cache(maxsize=8)
def _mel_spectrogram(sample_rate: int, n_fft: int, win_length: int, hop: int,
                     n_mels: int) -> torch.nn.Module:
    import torchaudio

    with warnings.catch_warnings():
        # With 128 bins at 16 kHz the lowest mel filter is narrower than one FFT bin and
        # comes out empty; Kaldi's fbank has the same empty bin (it sits at the log floor).
        warnings.filterwarnings("ignore", message="At least one mel filterbank")
        # center=False: frames start at sample 0 and never read padding, like Kaldi's fbank.
        return torchaudio.transforms.MelSpectrogram(
            sample_rate=sample_rate, n_fft=n_fft, win_length=win_length, hop_length=hop,
            n_mels=n_mels, center=False, power=2.0, mel_scale="htk",
        )


def spec_augment(features: torch.Tensor, config: AudioConfig) -> torch.Tensor:
    """SpecAugment masking (Park et al., 2019) with the global torch RNG.

    Masked values are set to 0, the dataset mean once features are normalised.

    Shapes:
        features: ``[T, F]``; output: same.
    """
    features = features.clone()
    frames, bins = features.shape
    for _ in range(config.num_freq_masks):
        start, width = _random_span(bins, config.freq_mask)
        features[:, start:start + width] = 0.0
    for _ in range(config.num_time_masks):
        start, width = _random_span(frames, config.time_mask)
        features[start:start + width, :] = 0.0
    return features


def _random_span(size: int, max_width: int) -> tuple[int, int]:
    width = int(torch.randint(0, min(max_width, size) + 1, ()).item())
    start = int(torch.randint(0, size - width + 1, ()).item())
    return start, width
