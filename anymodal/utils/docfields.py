"""The options of a config dataclass: name, type, default and the docstring's meaning.

``anymodal describe`` and ``anymodal config show`` list every option a modality, encoder,
objective, data set builder or the experiment config takes. The meaning of each field is
read from the ``Args:`` section of the dataclass's Google-style docstring, so the text a
plugin author writes once serves both the API reference and the command line.
"""

from __future__ import annotations

import dataclasses
import inspect
import re
from dataclasses import dataclass
from typing import Any

__all__ = ["Option", "args_section", "config_options"]

_SECTIONS = {"Args:", "Arguments:", "Attributes:", "Returns:", "Raises:", "Shapes:",
             "Example:", "Examples:", "Note:", "Notes:", "Yields:", "See Also:"}
_ENTRY = re.compile(r"^(\*{0,2}\w+)\s*(?:\([^)]*\))?\s*:\s*(.*)$")


@dataclass(frozen=True)
class Option:
    """One option of a config dataclass.

    Args:
        name: the dotted key (``"train.max_steps"``, or ``"n_mels"``).
        type: the annotation as written (``"int"``, ``"str | None"``).
        default: the default value (``None`` when the field has no default).
        meaning: the docstring's description of the field (``""`` when it has none).
        required: the field has no default: it must be given.
    """

    name: str
    type: str
    default: Any
    meaning: str
    required: bool = False


def _indent(line: str) -> int:
    return len(line) - len(line.lstrip())


def args_section(doc: str | None) -> dict[str, str]:
    """``{name: meaning}`` from the ``Args:`` (or ``Attributes:``) section of a docstring.

    A continuation line (indented deeper than its entry) joins the entry's meaning.

    Args:
        doc: the docstring, raw or cleaned (``inspect.cleandoc`` is applied).
    """
    lines = inspect.cleandoc(doc or "").splitlines()
    found: dict[str, str] = {}
    start = next((i for i, line in enumerate(lines)
                  if line.strip() in ("Args:", "Attributes:")), None)
    if start is None:
        return found
    entry_indent: int | None = None
    current: str | None = None
    for line in lines[start + 1:]:
        if not line.strip():
            continue
        if line.strip() in _SECTIONS:
            break
        indent = _indent(line)
        entry_indent = indent if entry_indent is None else entry_indent
        match = _ENTRY.match(line.strip())
        if indent == entry_indent and match:
            current = match.group(1).lstrip("*")
            found[current] = match.group(2).strip()
        elif indent > entry_indent and current is not None:
            found[current] = f"{found[current]} {line.strip()}".strip()
        else:
            break  # back at (or left of) the entries without an entry: the section ended
    return found


def _default(f: dataclasses.Field[Any]) -> tuple[Any, bool]:
    if f.default is not dataclasses.MISSING:
        return f.default, False
    if f.default_factory is not dataclasses.MISSING:
        return f.default_factory(), False
    return None, True


def _type_name(annotation: Any) -> str:
    if isinstance(annotation, str):
        return annotation
    return getattr(annotation, "__name__", None) or str(annotation).replace("typing.", "")


def config_options(config_cls: type | None, prefix: str = "") -> list[Option]:
    """Every option of ``config_cls``; a field holding a dataclass is expanded (dotted).

    Args:
        config_cls: a dataclass type, or ``None`` (no options).
        prefix: prepended to each name (``"train."``).
    """
    if config_cls is None or not dataclasses.is_dataclass(config_cls):
        return []
    # A field inherited from a base config is documented there: the subclass's text wins.
    meanings: dict[str, str] = {}
    for cls in reversed(config_cls.__mro__):
        meanings.update({k: v for k, v in args_section(cls.__doc__).items() if v})
    options: list[Option] = []
    for f in dataclasses.fields(config_cls):
        default, required = _default(f)
        if dataclasses.is_dataclass(default) and not isinstance(default, type):
            options += config_options(type(default), f"{prefix}{f.name}.")
            continue
        options.append(Option(f"{prefix}{f.name}", _type_name(f.type), default,
                              meanings.get(f.name, ""), required))
    return options
