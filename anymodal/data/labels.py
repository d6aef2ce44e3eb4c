"""Class labels read from manifests and shards: integers only, never a silent cast."""

from __future__ import annotations

import math
import re
from typing import Any

from anymodal.errors import DataError

__all__ = ["MAX_LABEL", "parse_label"]

# Labels index embedding tables and one-hot targets: a bound far above any class count,
# low enough that a label such as 1e30 is refused rather than overflowing an int64.
MAX_LABEL = 2**31 - 1
_INTEGER = re.compile(r"^[+-]?\d+$")


def parse_label(value: Any, source: object) -> int | None:
    """The integer class label of a row, or ``None`` when it has none.

    Integers, integer-valued floats (``3.0``) and strings of digits (CSV cells, ``"3"``) are
    labels; ``3.7``, ``true``, ``"three"``, ``Infinity``, NaN and values beyond
    :data:`MAX_LABEL` are refused (they used to become 3, 1 or a crash).

    Args:
        value: the label column's value.
        source: what is named in the error (the file and row).

    Raises:
        DataError: the value is not an integer label.
    """
    if value is None:
        return None
    if isinstance(value, bytes):
        value = value.decode("utf-8", "replace")
    number: int | None = None
    if isinstance(value, bool):
        number = None
    elif isinstance(value, int):
        number = value
    elif isinstance(value, float) and math.isfinite(value) and value.is_integer():
        number = int(value)
    elif isinstance(value, str) and _INTEGER.match(value.strip()):
        number = int(value.strip())
    if number is None or abs(number) > MAX_LABEL:
        raise DataError(source, f"label {value!r} is not an integer class label "
                        f"(expected a whole number with |label| <= {MAX_LABEL})")
    return number
