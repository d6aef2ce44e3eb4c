"""A PLY header reader: is the file a mesh, and is its body all there?

open3d's PLY reader, given a truncated binary file, prints a warning and returns the
header's count of points with uninitialised values after the cut; it cannot tell an
empty cloud from a corrupt file either. Reading the header ourselves lets the loader
say which of these it is, and whether a ``.ply`` holds faces (a mesh) or only vertices.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from anymodal import DataError

__all__ = ["PlyElement", "PlyHeader", "check_ply_body", "read_ply_header"]

_SIZES = {
    "char": 1, "int8": 1, "uchar": 1, "uint8": 1,
    "short": 2, "int16": 2, "ushort": 2, "uint16": 2,
    "int": 4, "int32": 4, "uint": 4, "uint32": 4, "float": 4, "float32": 4,
    "double": 8, "float64": 8,
}
_MAX_HEADER = 64 * 1024


@dataclass
class PlyElement:
    """One ``element`` line of a header and the byte size of its fixed properties.

    ``list_counts`` holds the byte size of the count of each list property (a face's
    ``vertex_indices``), whose items make the row size variable.
    """

    name: str
    count: int
    fixed_bytes: int = 0
    list_counts: list[tuple[int, int]] = field(default_factory=list)  # (count, item) bytes


@dataclass
class PlyHeader:
    """A parsed PLY header: its format, its elements, and where the body starts."""

    format: str
    elements: list[PlyElement]
    header_bytes: int

    def count(self, name: str) -> int:
        """How many items the element ``name`` declares (0 when absent)."""
        return sum(e.count for e in self.elements if e.name == name)


def read_ply_header(path: Path) -> PlyHeader:
    """Parse the header of the PLY file ``path``.

    Raises:
        DataError: not a PLY file, or a header that does not parse.
    """
    with open(path, "rb") as f:
        head = f.read(_MAX_HEADER)
    if not head.startswith(b"ply"):
        raise DataError(path, "not a PLY file (the file does not start with 'ply')")
    end = head.find(b"end_header")
    if end < 0:
        raise DataError(path, "corrupt PLY header (no 'end_header' line)")
    header_bytes = head.index(b"\n", end) + 1 if b"\n" in head[end:] else len(head)
    fmt, elements = "", []
    for raw in head[:end].decode("ascii", "replace").splitlines()[1:]:
        words = raw.split()
        if not words or words[0] in ("comment", "obj_info"):
            continue
        try:
            if words[0] == "format":
                fmt = words[1]
            elif words[0] == "element":
                elements.append(PlyElement(words[1], int(words[2])))
            elif words[0] == "property" and words[1] == "list":
                elements[-1].list_counts.append((_SIZES[words[2]], _SIZES[words[3]]))
            elif words[0] == "property":
                elements[-1].fixed_bytes += _SIZES[words[1]]
        except (IndexError, KeyError, ValueError):
            raise DataError(path, f"corrupt PLY header line {raw.strip()!r}") from None
    if fmt not in ("ascii", "binary_little_endian", "binary_big_endian"):
        raise DataError(path, f"corrupt PLY header (format {fmt!r})")
    return PlyHeader(fmt, elements, header_bytes)


def check_ply_body(path: Path, header: PlyHeader) -> None:
    """Raise :class:`DataError` when the body is shorter than the header promises.

    Binary files: the body must hold every fixed-size row, plus the count (and at least
    one item) of every list. ASCII files: one non-empty line per element row.
    """
    body = path.stat().st_size - header.header_bytes
    if header.format == "ascii":
        with open(path, "rb") as f:
            f.seek(header.header_bytes)
            lines = sum(1 for line in f if line.strip())
        expected = sum(e.count for e in header.elements)
        if lines < expected:
            raise DataError(path, f"truncated PLY file ({lines} of {expected} data lines)")
        return
    expected = 0
    for e in header.elements:
        row = e.fixed_bytes + sum(c + i for c, i in e.list_counts)
        expected += e.count * row
    if body < expected:
        raise DataError(
            path, f"truncated PLY file ({body} bytes of data, the header needs >= {expected})"
        )
