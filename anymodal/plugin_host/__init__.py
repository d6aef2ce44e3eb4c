"""The plugin host: hook specifications, the plugin manager and its typed registries.

- :mod:`anymodal.plugin_host.hookspecs`: the hooks a plugin may implement.
- :mod:`anymodal.plugin_host.manager`: loads the built-ins and the entry points, isolates
  and reports a failing plugin, and answers lookups (``get_modality``, ``create_encoder``...).
- :mod:`anymodal.plugin_host.registry`: name -> spec maps that refuse a name taken twice.

Importing this package imports neither torch nor any plugin.
"""

from __future__ import annotations

from anymodal.plugin_host.hookspecs import hookimpl, hookspec
from anymodal.plugin_host.manager import (
    PluginFailure,
    PluginInfo,
    PluginManager,
    get_plugin_manager,
    reset_plugin_manager,
)
from anymodal.plugin_host.registry import Registry, RegistryEntry, suggest

__all__ = [
    "PluginFailure",
    "PluginInfo",
    "PluginManager",
    "Registry",
    "RegistryEntry",
    "get_plugin_manager",
    "hookimpl",
    "hookspec",
    "reset_plugin_manager",
    "suggest",
]
