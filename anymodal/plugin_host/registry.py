"""Typed name -> spec registries. A name taken twice is an error, never a silent override."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from difflib import get_close_matches
from typing import Generic, TypeVar

from anymodal.errors import PluginError

T = TypeVar("T")

__all__ = ["Registry", "RegistryEntry", "suggest"]


def suggest(name: str, choices: list[str]) -> str:
    """A "did you mean" hint followed by the valid choices, for error messages."""
    close = get_close_matches(name, choices, n=1)
    hint = f"did you mean {close[0]!r}? " if close else ""
    listing = ", ".join(sorted(choices)) if choices else "(none registered)"
    return f"{hint}valid choices: {listing}"


@dataclass(frozen=True)
class RegistryEntry(Generic[T]):
    """A registered spec and the plugin that provided it."""

    spec: T
    plugin: str


class Registry(Generic[T]):
    """Names of one kind (modalities, encoders or objectives) mapped to their specs.

    Args:
        kind: the singular noun used in messages (``"encoder"``).
    """

    def __init__(self, kind: str) -> None:
        self.kind = kind
        self._entries: dict[str, RegistryEntry[T]] = {}

    def add(self, name: str, spec: T, plugin: str) -> None:
        """Register ``spec`` under ``name``; raises :class:`PluginError` if it is taken."""
        if not isinstance(name, str) or not name:
            raise PluginError(f"plugin {plugin!r} registered a {self.kind} with an empty name")
        if name in self._entries:
            owner = self._entries[name].plugin
            raise PluginError(
                f"{self.kind} {name!r} is already registered by plugin {owner!r}"
            )
        self._entries[name] = RegistryEntry(spec, plugin)

    def get(self, name: str) -> T:
        """The spec named ``name``; a :class:`PluginError` listing the choices otherwise."""
        try:
            return self._entries[name].spec
        except KeyError:
            raise PluginError(
                f"unknown {self.kind} {name!r}; {suggest(name, self.names())}"
            ) from None

    def owner(self, name: str) -> str:
        """The plugin that registered ``name``."""
        self.get(name)
        return self._entries[name].plugin

    def names(self) -> list[str]:
        """Every registered name, sorted."""
        return sorted(self._entries)

    def __contains__(self, name: object) -> bool:
        return name in self._entries

    def __iter__(self) -> Iterator[str]:
        return iter(self.names())

    def __len__(self) -> int:
        return len(self._entries)

    def items(self) -> list[tuple[str, RegistryEntry[T]]]:
        """``(name, entry)`` pairs sorted by name."""
        return sorted(self._entries.items())
