"""Command-line overrides of a config, and the keys a config schema does not know.

**The rule.** ``key=value`` *replaces* the value at ``key``: a mapping given for a key is
the whole new value (fields it leaves out take their schema defaults, or disappear from a
free mapping such as ``params``)::

    modalities.text={encoder: text_minilm, freeze: true}   # the old params are gone

``key+=value`` *merges* instead: a mapping is merged into the current one (OmegaConf
merge), a list is extended::

    modalities.text.params+={width: 64}                    # other params kept
    logging.trackers+=[tensorboard]

Values are parsed as OmegaConf parses a dotlist (YAML: ``1e-3`` is a float, ``[a, b]``
a list, ``{k: v}`` a mapping, ``${...}`` an interpolation).
"""

from __future__ import annotations

import dataclasses
import types
import typing
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from difflib import get_close_matches
from typing import Any

from omegaconf import DictConfig, ListConfig, OmegaConf, open_dict
from omegaconf.errors import OmegaConfBaseException

from anymodal.errors import ConfigError

__all__ = ["Override", "apply_overrides", "check_keys", "parse_override", "type_at",
           "unknown_keys"]


@dataclass(frozen=True)
class Override:
    """One parsed ``key=value`` (replace) or ``key+=value`` (merge) item.

    Args:
        key: the dotted key.
        value: the parsed value.
        merge: ``True`` for ``+=``.
        text: the item as written (for messages).
    """

    key: str
    value: Any
    merge: bool
    text: str


def parse_override(item: str) -> Override:
    """Parse ``key=value`` or ``key+=value`` (raises :class:`ConfigError` naming the item)."""
    key, sep, raw = item.partition("=")
    merge = key.endswith("+")
    key = key[:-1] if merge else key
    if not sep or not key.strip() or key != key.strip():
        raise ConfigError(f"override {item!r} must look like key=value or key+=value")
    try:
        parsed = OmegaConf.to_container(OmegaConf.from_dotlist([f"value={raw}"]))
        value = parsed["value"] if isinstance(parsed, dict) else None
    except OmegaConfBaseException as exc:
        raise ConfigError(f"cannot parse override {item!r}: {exc}") from None
    return Override(key, value, merge, item)


def _unwrap(tp: Any) -> Any:
    """``X`` from ``X | None`` / ``Optional[X]``; anything else unchanged."""
    if typing.get_origin(tp) in (typing.Union, types.UnionType):
        args = [a for a in typing.get_args(tp) if a is not type(None)]
        return args[0] if len(args) == 1 else Any
    return tp


def _child(tp: Any, key: str) -> tuple[bool, Any]:
    """``(known, type)`` of ``key`` under a node of type ``tp``."""
    tp = _unwrap(tp)
    if dataclasses.is_dataclass(tp):
        hints = typing.get_type_hints(tp)
        return (key in hints), hints.get(key, Any)
    if typing.get_origin(tp) is dict:
        args = typing.get_args(tp)
        return True, args[1] if len(args) == 2 else Any
    return tp is Any, Any  # a scalar has no keys under it; Any takes anything


def type_at(schema: type, key: str) -> Any:
    """The declared type at dotted ``key`` of the dataclass ``schema`` (``None``: unknown)."""
    tp: Any = schema
    for part in key.split("."):
        known, tp = _child(tp, part)
        if not known:
            return None
    return _unwrap(tp)


def unknown_keys(data: Mapping[str, Any], schema: Any, prefix: str = "") -> list[str]:
    """Every dotted key of ``data`` that the dataclass ``schema`` does not define.

    Free mappings (``dict[str, Any]``, such as encoder ``params``) accept any key; their
    contents are checked later against the encoder's own dataclass.

    Args:
        data: a recipe, or the nested form of overrides.
        schema: the dataclass (or type) that ``data`` should fit.
        prefix: prepended to the reported keys.
    """
    found: list[str] = []
    for key, value in data.items():
        known, tp = _child(schema, str(key))
        if not known:
            found.append(f"{prefix}{key}")
        elif isinstance(value, Mapping):
            found += unknown_keys(value, tp, f"{prefix}{key}.")
        elif isinstance(value, list) and dataclasses.is_dataclass(_item_type(tp)):
            for i, item in enumerate(value):  # a list of dataclasses (data.train.sources)
                if isinstance(item, Mapping):
                    found += unknown_keys(item, _item_type(tp), f"{prefix}{key}[{i}].")
    return found


def _item_type(tp: Any) -> Any:
    """``X`` of a ``list[X]`` type (``None`` for anything else)."""
    tp = _unwrap(tp)
    args = typing.get_args(tp)
    return args[0] if typing.get_origin(tp) is list and len(args) == 1 else None


def _valid_here(schema: type, key: str) -> list[str]:
    parent = key.rpartition(".")[0]
    tp = type_at(schema, parent) if parent else schema
    return [f.name for f in dataclasses.fields(tp)] if dataclasses.is_dataclass(tp) else []


def check_keys(layers: Iterable[tuple[str, Any]], schema: type) -> None:
    """Raise one :class:`ConfigError` listing every unknown key of every layer.

    Args:
        layers: ``(where, data)`` pairs: a recipe file, a mapping, or ``"override 'x=1'"``.
        schema: the config dataclass.
    """
    problems = []
    for where, data in layers:
        if not isinstance(data, Mapping):
            continue  # not a mapping at all: merging it reports what it is
        for key in unknown_keys(data, schema):
            close = get_close_matches(key.rpartition(".")[2], _valid_here(schema, key), n=1)
            hint = f"; did you mean {close[0]!r}?" if close else ""
            problems.append(f"{key!r}{hint} ({where})")
    if len(problems) == 1:
        raise ConfigError(f"unknown config key {problems[0]}")
    if problems:
        raise ConfigError(f"{len(problems)} unknown config keys: " + ", ".join(problems)
                          + " ('anymodal describe config' lists every key)")


def _nested(key: str, value: Any) -> dict[str, Any]:
    for part in reversed(key.split(".")):
        value = {part: value}
    return value


def _write(config: DictConfig, key: str, value: Any, schema: type) -> None:
    """Set ``key`` to ``value`` as a whole (nothing of the old value survives)."""
    parent_key, _, leaf = key.rpartition(".")
    parent = OmegaConf.select(config, parent_key, default=None) if parent_key else config
    if isinstance(parent, DictConfig) and leaf in parent:
        parent_type = type_at(schema, parent_key) if parent_key else schema
        if typing.get_origin(parent_type) is dict:  # an entry of a mapping: drop it first
            with open_dict(parent):
                del parent[leaf]
        else:  # a field of a dataclass: assign a fresh value of the field's type
            tp = type_at(schema, key)
            if isinstance(value, Mapping) and dataclasses.is_dataclass(tp):
                value = OmegaConf.merge(OmegaConf.structured(tp), value)
            item_tp = _item_type(tp)
            if isinstance(value, list) and dataclasses.is_dataclass(item_tp):
                value = [OmegaConf.merge(OmegaConf.structured(item_tp), v)
                         if isinstance(v, Mapping) else v for v in value]
            OmegaConf.update(config, key, value, merge=False)
            return
    config.merge_with(_nested(key, value))  # merging creates any missing typed parents


def _apply(config: DictConfig, item: Override, schema: type) -> None:
    current = OmegaConf.select(config, item.key, default=None)
    value = item.value
    if item.merge:
        if isinstance(current, DictConfig) and isinstance(value, Mapping):
            value = OmegaConf.merge(current, value)
        elif isinstance(current, ListConfig) and isinstance(value, list):
            value = [*current, *value]
        elif current is not None:
            raise ConfigError(f"override {item.text!r}: '+=' merges a mapping into a mapping "
                              f"or extends a list; {item.key!r} is {current!r}")
    _write(config, item.key, value, schema)


def apply_overrides(config: DictConfig, items: Iterable[str], schema: type) -> DictConfig:
    """Apply ``key=value`` / ``key+=value`` items in order (see the module doc).

    Args:
        config: the merged recipe (modified in place and returned).
        items: the overrides as written on the command line.
        schema: the config dataclass, for unknown-key messages and fresh mapping values.

    Raises:
        ConfigError: every unknown key at once, or a value of the wrong type.
    """
    parsed = [parse_override(item) for item in items]
    check_keys([(f"override {p.text!r}", _nested(p.key, p.value)) for p in parsed], schema)
    for item in parsed:
        try:
            _apply(config, item, schema)
        except OmegaConfBaseException as exc:
            message = str(getattr(exc, "msg", exc)).splitlines()[0]
            raise ConfigError(f"config key {item.key!r} (override {item.text!r}): {message}"
                              ) from None
    return config
