"""Reading audio into a mono float waveform at the configured sample rate.

Audio files (wav, flac, ogg, mp3...) are decoded by ``soundfile`` (libsndfile); the audio
track of a video or AAC container (mp4, mkv, webm, m4a...) by ``decord.AudioReader``
(FFmpeg), so that one video file can feed both the ``audio`` and the ``video`` modality.
Every failure is an :class:`anymodal.DataError` that names the source and the problem.
"""

from __future__ import annotations

import functools
import io
import math
import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import torch

from anymodal import DataError, capture_native_stderr
from anymodal.utils.native import decoder_error
from anymodal_audio.config import AudioConfig

__all__ = ["CONTAINER_EXTENSIONS", "EAGER_SECONDS", "SOUNDFILE_EXTENSIONS", "SeekableAudio",
           "load_audio"]

# Formats libsndfile 1.1+ decodes; a file with one of these suffixes that libsndfile does not
# recognise is reported as corrupt rather than handed to FFmpeg.
SOUNDFILE_EXTENSIONS = frozenset(
    {".wav", ".wave", ".flac", ".ogg", ".oga", ".opus", ".mp3", ".aiff", ".aif", ".au",
     ".w64", ".caf", ".rf64"}
)
# Containers read through decord/FFmpeg (libsndfile cannot open them).
CONTAINER_EXTENSIONS = frozenset(
    {".mp4", ".m4a", ".m4v", ".mov", ".mkv", ".webm", ".avi", ".aac", ".3gp"}
)
# mpg123 estimates an MP3's length from its headers, so a few percent of slack is normal.
_DECLARED_LENGTH_SLACK = {"MP3": 0.05}
_CHUNK_LOG = re.compile(r"^(?:data|SSND)\s*:\s*(\d+)\s*\(should be (\d+)\)", re.MULTILINE)
# FFmpeg decodes to float in [-1, 1]; far beyond that is garbage, not audio.
_DECODED_LIMIT = 1e3
# Files longer than this (libsndfile formats) are read span by span, never whole: a 1-hour
# 48 kHz WAV took 5.4 GB to give a 1 s clip when decoded whole.
EAGER_SECONDS = 60.0
# Native samples read on each side of a span, so that resampling has context at its edges.
_SPAN_MARGIN = 256


def load_audio(source: Any, config: AudioConfig) -> torch.Tensor:
    """Read ``source`` as mono audio at ``config.sample_rate``.

    Args:
        source: a path (``str`` or ``Path``); encoded bytes; a float array or tensor of
            samples at ``config.sample_rate`` (``[N]`` or channels-first ``[C, N]``); or a
            tuple ``(samples, sample_rate)``.
        config: the modality's options.

    Returns:
        the waveform, float32; for a file longer than ``EAGER_SECONDS`` that libsndfile
        reads, a :class:`SeekableAudio` that stands for it and decodes only the spans
        it is sliced to (the crops of ``transform``), so that memory follows the clip, not
        the file.

    Shapes:
        output: ``[N]``.

    Raises:
        DataError: missing, corrupt, truncated, empty or unknown-format input, no audio
            stream, or NaN/infinite samples; the message names the source.
    """
    name: Any = source
    if isinstance(source, (str, Path)):
        long = _long_file(Path(source), config)
        if long is not None:
            return long  # type: ignore[return-value]  # reads only the spans it is cut to
        samples, rate = _read_path(Path(source), config)
    elif isinstance(source, (bytes, bytearray, memoryview)):
        name = f"<{len(source)} bytes of audio>"
        samples, rate = _read_bytes(bytes(source), name, config)
    elif isinstance(source, tuple) and len(source) == 2:
        name = "<audio array>"
        samples, rate = _as_channels_first(source[0], name), int(source[1])
    elif isinstance(source, (np.ndarray, torch.Tensor)):
        name = "<audio array>"
        samples, rate = _as_channels_first(source, name), config.sample_rate
    else:
        raise DataError(type(source).__name__, "unsupported audio source type; expected a "
                        "path, bytes, an array/tensor of samples or (samples, sample_rate)")
    return _to_mono_at_rate(samples, rate, name, config)


def _read_path(path: Path, config: AudioConfig) -> tuple[torch.Tensor, int]:
    if not path.exists():
        raise DataError(path, "file not found")
    if path.is_dir():
        raise DataError(path, "is a directory, expected an audio or video file")
    suffix = path.suffix.lower()
    if suffix in CONTAINER_EXTENSIONS:
        return _read_with_decord(str(path), path, config), config.sample_rate
    return _read_soundfile_or_ffmpeg(str(path), lambda: str(path), path, suffix, config)


def _read_bytes(data: bytes, name: str, config: AudioConfig) -> tuple[torch.Tensor, int]:
    return _read_soundfile_or_ffmpeg(io.BytesIO(data), lambda: io.BytesIO(data), name, "",
                                     config)


def _read_soundfile_or_ffmpeg(file: Any, reopen: Callable[[], Any], name: Any, suffix: str,
                              config: AudioConfig) -> tuple[torch.Tensor, int]:
    """Decode with libsndfile first, then FFmpeg.

    A format libsndfile does not know (and whose suffix is not one of its own) goes to
    FFmpeg before we call it unknown.
    """
    try:
        return _read_with_soundfile(file, name)
    except _UnrecognisedFormat as exc:
        if suffix in SOUNDFILE_EXTENSIONS:
            raise DataError(name, f"corrupt or not a {suffix[1:]} file ({exc})") from None
        try:
            return _read_with_decord(reopen(), name, config), config.sample_rate
        except DataError as ffmpeg_exc:
            kind = f"'{suffix}'" if suffix else "of these bytes"
            raise DataError(name, f"unknown or unsupported audio format {kind} (soundfile: "
                            f"{exc}; ffmpeg: {ffmpeg_exc.problem})") from None


class _UnrecognisedFormat(Exception):
    pass


def _read_with_soundfile(file: Any, name: Any) -> tuple[torch.Tensor, int]:
    import soundfile

    failure: Exception | None = None
    with capture_native_stderr() as err:  # mpg123 prints warnings about odd MP3 headers
        try:
            with soundfile.SoundFile(file) as handle:
                declared, rate, fmt = handle.frames, handle.samplerate, handle.format
                header_log = handle.extra_info
                data = handle.read(dtype="float32", always_2d=True)
        except (soundfile.SoundFileError, RuntimeError) as exc:
            failure = exc
    if failure is not None:
        reason = getattr(failure, "error_string", None) or str(failure)
        if "format not recognised" in reason.lower():
            raise _UnrecognisedFormat(reason)
        native = err.reason()
        raise DataError(name, f"corrupt or truncated audio: {reason}"
                        + (f" ({native})" if native else ""))
    short_chunk = _short_data_chunk(header_log)
    if short_chunk is not None:
        raise DataError(name, f"truncated or corrupt {fmt} file: its header declares "
                        f"{short_chunk[0]} bytes of audio data, the file holds {short_chunk[1]}")
    slack = _DECLARED_LENGTH_SLACK.get(fmt, 0.0)
    if data.shape[0] < declared * (1.0 - slack):
        raise DataError(name, f"truncated or corrupt {fmt} file: its header declares "
                        f"{declared} samples but only {data.shape[0]} could be decoded")
    return torch.from_numpy(np.ascontiguousarray(data.T)), int(rate)


def _short_data_chunk(header_log: str) -> tuple[int, int] | None:
    """``(declared, present)`` bytes when libsndfile logged a data chunk cut short.

    For WAV/AIFF, libsndfile silently reads what is there and only notes
    ``data : 32000 (should be 15978)`` in its log; 0 and 0xFFFFFFFF are the sizes streaming
    writers leave when they cannot seek back, not truncation.
    """
    found = _CHUNK_LOG.search(header_log or "")
    if found is None:
        return None
    declared, present = int(found.group(1)), int(found.group(2))
    if declared in (0, 0xFFFFFFFF) or declared <= present:
        return None
    return declared, present


def _read_with_decord(file: Any, name: Any, config: AudioConfig) -> torch.Tensor:
    """The audio track of a container, resampled by FFmpeg to ``config.sample_rate``.

    decord reports ``sample_rate=-1`` (keep the original) without telling the original
    rate, so we let FFmpeg's resampler produce the target rate directly.
    """
    import decord

    failure: Exception | None = None
    with capture_native_stderr() as err:
        try:
            # mono=True: decord 0.6 leaves uninitialised values (NaN, 1e38) in some
            # multi-channel AAC reads with mono=False; its own downmix is clean.
            reader = decord.AudioReader(file, sample_rate=config.sample_rate, mono=True)
            # The constructor decodes the whole track into ``_array``; ``reader[:]`` would
            # copy it again sample index by sample index.
            samples = getattr(reader, "_array", None)
            if samples is None:
                samples = reader[:].asnumpy()
        except Exception as exc:  # decord raises DECORDError/RuntimeError with native text
            failure = exc
    if failure is not None:
        raise decoder_error(failure, err, name, "audio", "cannot decode the audio track "
                            "(corrupt, truncated or not a media file)")
    samples = torch.from_numpy(np.array(samples, dtype=np.float32, copy=True))
    if torch.isfinite(samples).all() and samples.abs().max() > _DECODED_LIMIT:
        raise DataError(name, f"decoded samples reach {samples.abs().max():.3g}, far outside "
                        "[-1, 1]: a corrupt stream or a decoder error")
    return samples


def _as_channels_first(samples: Any, name: str) -> torch.Tensor:
    try:
        tensor = torch.as_tensor(np.asarray(samples.detach().cpu() if torch.is_tensor(samples)
                                            else samples, dtype=np.float32))
    except (TypeError, ValueError) as exc:
        raise DataError(name, f"cannot be read as float samples ({exc})") from None
    if tensor.dim() == 1:
        tensor = tensor[None]
    if tensor.dim() != 2:
        raise DataError(name, f"expected samples of shape [N] or [C, N], got {list(tensor.shape)}")
    return tensor


def _to_mono_at_rate(samples: torch.Tensor, rate: int, name: Any,
                     config: AudioConfig) -> torch.Tensor:
    """Check, mix down and resample ``[C, N]`` samples to ``[N]`` at the configured rate."""
    if samples.shape[-1] == 0 or samples.shape[0] == 0:
        raise DataError(name, "has no audio samples (empty stream)")
    # a finite sum proves every sample finite in one pass without a mask; an infinite one
    # (NaN, inf, or finite samples that overflow) takes the exact count
    if not torch.isfinite(samples.sum()) and not torch.isfinite(samples).all():
        bad = int((~torch.isfinite(samples)).sum())
        raise DataError(name, f"decoded samples contain {bad} NaN or infinite values")
    if rate <= 0:
        raise DataError(name, f"invalid sample rate {rate}")
    mono = samples[0] if samples.shape[0] == 1 else samples.mean(dim=0)
    if rate != config.sample_rate:
        mono = _resampler(rate, config.sample_rate)(mono)
    return mono.contiguous()


@functools.lru_cache(maxsize=8)
def _resampler(rate: int, target: int) -> torch.nn.Module:
    """The sinc resampler of torchaudio, its kernel computed once per pair of rates.

    The same kernel and convolution as ``torchaudio.functional.resample`` (same output,
    bit for bit), without recomputing the kernel for every file (~4 ms each here).
    """
    import torchaudio.transforms as AT

    return AT.Resample(rate, target, dtype=torch.float32)  # the kernel in the samples' dtype


def _long_file(path: Path, config: AudioConfig) -> SeekableAudio | None:
    """A :class:`SeekableAudio` for a seekable libsndfile file over ``EAGER_SECONDS``."""
    if path.suffix.lower() not in SOUNDFILE_EXTENSIONS or not path.is_file():
        return None
    import soundfile

    try:
        with capture_native_stderr(), soundfile.SoundFile(str(path)) as handle:
            frames, rate, seekable = handle.frames, handle.samplerate, handle.seekable()
            truncated = _short_data_chunk(handle.extra_info) is not None
    except (soundfile.SoundFileError, RuntimeError):
        return None  # the eager path reports the problem in full
    if truncated or not seekable or rate <= 0 or frames <= EAGER_SECONDS * rate:
        return None  # short, or damaged: decoded whole, with every check
    return SeekableAudio(path, frames, rate, config)


class SeekableAudio:
    """A long audio file that decodes only the spans it is sliced to.

    It stands for the mono waveform at ``config.sample_rate`` that :func:`load_audio` would
    return: ``shape[-1]`` is that waveform's length, and ``audio[start:stop]`` seeks to the
    span (``soundfile`` ``seek`` + ``frames``), decodes it with a small margin, mixes it
    down and resamples it. The crops of ``transform_audio`` use exactly these two.

    Args:
        path: the file.
        frames: its length in native frames.
        rate: its native sample rate.
        config: the modality's options.
    """

    def __init__(self, path: Path, frames: int, rate: int, config: AudioConfig) -> None:
        self.path, self.frames, self.rate, self.config = path, frames, rate, config
        self.length = frames * config.sample_rate // rate

    @property
    def shape(self) -> tuple[int]:
        """``(N,)``: the length at ``config.sample_rate``."""
        return (self.length,)

    def __len__(self) -> int:
        """The length at ``config.sample_rate``."""
        return self.length

    def __getitem__(self, span: slice) -> torch.Tensor:
        """Decode ``[start:stop]`` (positions at ``config.sample_rate``).

        Shapes:
            output: ``[stop - start]``.
        """
        if not isinstance(span, slice) or span.step not in (None, 1):
            raise TypeError("a SeekableAudio is read by contiguous slices only")
        start, stop, _ = span.indices(self.length)
        target = self.config.sample_rate
        # Start on a frame where both rates' sample grids meet, so that the resampled span
        # lines up exactly with the whole decode (no fractional-sample shift).
        grid = self.rate // math.gcd(self.rate, target)
        first = max(0, (start * self.rate // target - _SPAN_MARGIN) // grid * grid)
        last = min(self.frames, -(-stop * self.rate // target) + _SPAN_MARGIN)
        mono = _to_mono_at_rate(self._read(first, last - first), self.rate, self.path,
                                self.config)
        offset = first * target // self.rate
        out = mono[start - offset:stop - offset]
        return torch.nn.functional.pad(out, (0, (stop - start) - out.shape[-1]))

    def _read(self, first: int, count: int) -> torch.Tensor:
        import soundfile

        try:
            with capture_native_stderr(), soundfile.SoundFile(str(self.path)) as handle:
                handle.seek(first)
                data = handle.read(frames=count, dtype="float32", always_2d=True)
        except (soundfile.SoundFileError, RuntimeError) as exc:
            raise DataError(self.path, f"corrupt or truncated audio: {exc}") from None
        if data.shape[0] < count:
            raise DataError(self.path, f"truncated: {data.shape[0]} of the {count} frames at "
                            f"frame {first} could be read (the header declares {self.frames})")
        return torch.from_numpy(np.ascontiguousarray(data.T))
