"""A video's frame size read from its container header, before anything is decoded.

decord tells a frame's size only by decoding one, and a frame of 12000 x 12000 pixels
takes gigabytes to decode. The two container families this project writes and reads most
declare the coded size in their headers:

- ISO base media (mp4, mov, m4v, 3gp): ``moov/trak/mdia/minf/stbl/stsd``, whose visual
  sample entry (in a track with a ``vmhd``) holds width and height as two 16-bit fields;
- Matroska and WebM: ``Segment/Tracks/TrackEntry/Video/PixelWidth|PixelHeight``.

Only box and element headers are read (seeking over the media data), so the cost does not
grow with the file. Other containers give ``None``; the caller then checks the first
decoded frame instead.
"""

from __future__ import annotations

import struct
from typing import BinaryIO

__all__ = ["frame_size"]

_MP4_CONTAINERS = {b"moov", b"trak", b"mdia", b"minf", b"stbl"}
_EBML_MAGIC = b"\x1a\x45\xdf\xa3"
_MKV_SEGMENT, _MKV_TRACKS, _MKV_ENTRY, _MKV_VIDEO = 0x18538067, 0x1654AE6B, 0xAE, 0xE0
_MKV_WIDTH, _MKV_HEIGHT = 0xB0, 0xBA
_MAX_STEPS = 10_000  # boxes/elements visited at most: a damaged header cannot loop long


def frame_size(handle: BinaryIO) -> tuple[int, int] | None:
    """``(width, height)`` of the largest video track that the header declares, or ``None``.

    Args:
        handle: the file, opened in binary mode and seekable; its position is restored.
    """
    start = handle.tell()
    try:
        head = handle.read(12)
        handle.seek(0, 2)
        end = handle.tell()
        if head[:4] == _EBML_MAGIC:
            return _matroska(handle, end)
        if head[4:8] in (b"ftyp", b"moov", b"mdat", b"free", b"wide", b"skip"):
            sizes, _ = _mp4(handle, 0, end, [0])
            return max(sizes, key=lambda s: s[0] * s[1]) if sizes else None
        return None
    except (OSError, struct.error, ValueError):
        return None
    finally:
        handle.seek(start)


def _mp4(handle: BinaryIO, pos: int, end: int, steps: list[int]
         ) -> tuple[list[tuple[int, int]], bool]:
    """Sizes of the sample entries under the boxes in ``[pos, end)``, and a flag.

    The flag says whether a ``vmhd`` (the video media header) is among those boxes.
    """
    sizes: list[tuple[int, int]] = []
    video = False
    while pos + 8 <= end and steps[0] < _MAX_STEPS:
        steps[0] += 1
        handle.seek(pos)
        size, kind = struct.unpack(">I4s", handle.read(8))
        body = pos + 8
        if size == 1:  # 64-bit size follows the type
            size, body = struct.unpack(">Q", handle.read(8))[0], pos + 16
        elif size == 0:  # to the end of the file
            size = end - pos
        if size < body - pos:
            break
        if kind in _MP4_CONTAINERS:
            found, has_video = _mp4(handle, body, pos + size, steps)
            # a minf describes one track: keep its sizes only when it is a video track
            sizes += found if kind != b"minf" or has_video else []
        elif kind == b"vmhd":
            video = True
        elif kind == b"stsd":
            sizes += _sample_entries(handle, body, pos + size)
        pos += size
    return sizes, video


def _sample_entries(handle: BinaryIO, body: int, end: int) -> list[tuple[int, int]]:
    """Width and height of each sample entry of an ``stsd`` that has them."""
    handle.seek(body + 4)  # version and flags
    (count,) = struct.unpack(">I", handle.read(4))
    pos, sizes = body + 8, []
    for _ in range(min(count, 16)):
        if pos + 36 > end:
            break
        handle.seek(pos)
        size, _kind = struct.unpack(">I4s", handle.read(8))
        handle.seek(pos + 8 + 24)  # reserved, data reference index, pre-defined fields
        width, height = struct.unpack(">HH", handle.read(4))
        if width and height:
            sizes.append((width, height))
        if size < 8:
            break
        pos += size
    return sizes


def _vint(handle: BinaryIO, keep_marker: bool) -> int:
    """One EBML variable-length integer (an element id keeps its length marker)."""
    first = handle.read(1)
    if not first:
        raise ValueError("end of file")
    byte = first[0]
    length = next((i + 1 for i in range(8) if byte & (0x80 >> i)), 0)
    if length == 0:
        raise ValueError("invalid EBML integer")
    value = byte if keep_marker else byte & (0xFF >> length)
    for extra in handle.read(length - 1):
        value = (value << 8) | extra
    if not keep_marker and value == (1 << (7 * length)) - 1:
        return -1  # unknown size (a live stream's segment)
    return value


def _matroska(handle: BinaryIO, end: int) -> tuple[int, int] | None:
    """Pixel size of the first video track of a Matroska/WebM file."""
    handle.seek(0)
    pos, limit, steps, width, height = 0, end, 0, 0, 0
    while pos < limit and steps < _MAX_STEPS:
        steps += 1
        handle.seek(pos)
        element, size = _vint(handle, True), _vint(handle, False)
        body = handle.tell()
        stop = limit if size < 0 else body + size
        if element in (_MKV_SEGMENT, _MKV_TRACKS, _MKV_ENTRY, _MKV_VIDEO):
            # descend; siblings follow the parent's children, so reading on from its
            # body visits the next track entry, then the segment's other elements
            pos = body
            continue
        if element in (_MKV_WIDTH, _MKV_HEIGHT):
            value = int.from_bytes(handle.read(size), "big")
            width, height = (value, height) if element == _MKV_WIDTH else (width, value)
            if width and height:
                return width, height
        pos = stop
    return None
