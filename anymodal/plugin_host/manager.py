"""The plugin manager: built-in plugins first, then the ``anymodal`` entry points.

Environment switches:

- ``ANYMODAL_DISABLE_PLUGIN_AUTOLOAD=1``: load only the built-ins.
- ``ANYMODAL_PLUGINS=a,b``: load only the entry-point plugins named (by entry-point or
  distribution name); the built-ins always load.
- ``ANYMODAL_STRICT_PLUGINS=1``: a plugin that fails raises instead of being reported.
- ``ANYMODAL_PLUGIN_MODULES=pkg.mod,other``: also register these importable modules
  (loaded last, whatever the two switches above say), like pytest's ``-p``.
- ``ANYMODAL_PLUGIN_IMPORT_TIMEOUT=30``: seconds a plugin's import may take before it is a
  failed plugin (``0``: no limit; see :mod:`anymodal.plugin_host.import_timeout`).

A plugin that fails to import (or hangs there), implements an unknown hook, raises in a
hook, or registers a name already taken contributes nothing and is listed in
:attr:`PluginManager.failures` with its distribution, version and the reason; the other
plugins load as usual.

Order: the built-ins, then the entry points sorted by name, then ``ANYMODAL_PLUGIN_MODULES``
in the order given. A register hook may look up what loaded before it
(:func:`lookup_registered`), e.g. to derive ``my_audio`` from ``audio``.
"""

from __future__ import annotations

import contextvars
import functools
import importlib
import os
import threading
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from importlib import metadata
from pathlib import Path
from typing import Any

import pluggy

from anymodal._version import __version__
from anymodal.errors import PluginError
from anymodal.plugin_host import hookspecs
from anymodal.plugin_host.import_timeout import ImportTimedOut, bounded_import
from anymodal.plugin_host.import_timeout import import_timeout as read_import_timeout
from anymodal.plugin_host.registry import Registry
from anymodal.types import (
    CommandSpec,
    DatasetSpec,
    DoctorCheck,
    EncoderSpec,
    ModalitySpec,
    ObjectiveSpec,
)
from anymodal.utils.params import build_params

__all__ = [
    "BUILTIN_PLUGINS",
    "ENTRY_POINT_GROUP",
    "PluginFailure",
    "PluginInfo",
    "PluginManager",
    "create_encoder",
    "create_objective",
    "get_encoder_spec",
    "get_modality",
    "get_plugin_manager",
    "list_encoders",
    "list_modalities",
    "list_objectives",
    "reset_plugin_manager",
]

ENTRY_POINT_GROUP = "anymodal"
BUILTIN_PLUGINS = (
    "anymodal.builtin.vector",
    "anymodal.builtin.objectives",
    "anymodal.builtin.checks",
)

_REGISTER_HOOKS: tuple[tuple[str, str, type], ...] = (
    ("anymodal_register_modalities", "modalities", ModalitySpec),
    ("anymodal_register_encoders", "encoders", EncoderSpec),
    ("anymodal_register_objectives", "objectives", ObjectiveSpec),
    ("anymodal_register_datasets", "datasets", DatasetSpec),
    ("anymodal_register_doctor_checks", "doctor_checks", DoctorCheck),
    ("anymodal_register_commands", "commands", CommandSpec),
)


@dataclass
class PluginInfo:
    """A plugin that loaded, and what it provides."""

    name: str
    distribution: str
    version: str
    module: str
    builtin: bool
    modalities: list[str] = field(default_factory=list)
    encoders: list[str] = field(default_factory=list)
    objectives: list[str] = field(default_factory=list)
    datasets: list[str] = field(default_factory=list)
    doctor_checks: list[str] = field(default_factory=list)
    commands: list[str] = field(default_factory=list)


@dataclass
class PluginFailure:
    """A plugin that did not load, and why."""

    name: str
    distribution: str
    version: str
    reason: str

    def __str__(self) -> str:
        return f"plugin {self.name!r} ({self.distribution} {self.version}): {self.reason}"


@dataclass
class _Candidate:
    name: str
    distribution: str
    version: str
    builtin: bool
    load: Callable[[], Any]


# The manager whose register hooks are running: lookups made by a hook see what it holds.
_REGISTERING: contextvars.ContextVar[PluginManager | None] = contextvars.ContextVar(
    "anymodal_registering", default=None)


def _env_flag(name: str) -> bool:
    return os.environ.get(name, "").strip().lower() in {"1", "true", "yes", "on"}


def _iter_entry_points() -> Iterable[metadata.EntryPoint]:
    """The installed entry points of the ``anymodal`` group (patched in tests)."""
    return metadata.entry_points(group=ENTRY_POINT_GROUP)


class PluginManager:
    """Holds the pluggy manager and the three registries.

    Args:
        autoload: load entry-point plugins (defaults to not ``ANYMODAL_DISABLE_PLUGIN_AUTOLOAD``).
        allow: entry-point plugins to load (defaults to ``ANYMODAL_PLUGINS``); ``None``: all.
        strict: raise on the first failing plugin (defaults to ``ANYMODAL_STRICT_PLUGINS``).
        import_timeout: seconds each plugin's import may take (defaults to
            ``ANYMODAL_PLUGIN_IMPORT_TIMEOUT``, else 30; ``0``: no limit). The built-ins
            are not limited.
    """

    def __init__(
        self,
        autoload: bool | None = None,
        allow: Iterable[str] | None = None,
        strict: bool | None = None,
        import_timeout: float | None = None,
    ) -> None:
        self.pm = pluggy.PluginManager(hookspecs.PROJECT_NAME)
        self.pm.add_hookspecs(hookspecs)
        self.modalities: Registry[ModalitySpec] = Registry("modality")
        self.encoders: Registry[EncoderSpec] = Registry("encoder")
        self.objectives: Registry[ObjectiveSpec] = Registry("objective")
        self.datasets: Registry[DatasetSpec] = Registry("dataset")
        self.doctor_checks: Registry[DoctorCheck] = Registry("doctor check")
        self.commands: Registry[CommandSpec] = Registry("command")
        self.plugins: dict[str, PluginInfo] = {}
        self.failures: list[PluginFailure] = []
        self.autoload = (
            not _env_flag("ANYMODAL_DISABLE_PLUGIN_AUTOLOAD") if autoload is None else autoload
        )
        if allow is None and os.environ.get("ANYMODAL_PLUGINS", "").strip():
            allow = [a.strip() for a in os.environ["ANYMODAL_PLUGINS"].split(",") if a.strip()]
        self.allow = None if allow is None else set(allow)
        self.strict = _env_flag("ANYMODAL_STRICT_PLUGINS") if strict is None else strict
        self.import_timeout = read_import_timeout() if import_timeout is None else import_timeout

    # -- loading -------------------------------------------------------------------------

    def load(self) -> PluginManager:
        """Load the built-ins, then (unless disabled) the entry-point plugins."""
        for candidate in self._builtin_candidates():
            self._load_candidate(candidate)
        if self.autoload:
            for candidate in self._entry_point_candidates():
                self._load_candidate(candidate)
        for candidate in self._module_candidates():
            self._load_candidate(candidate)
        self._check_encoder_modalities()
        return self

    def register_plugin(self, plugin: Any, name: str | None = None,
                        distribution: str = "(registered in code)", version: str = "") -> bool:
        """Register a module or object with hookimpls at run time (notebooks, tests).

        Returns whether it loaded; a failure is recorded (or raised in strict mode).
        """
        name = name or getattr(plugin, "__name__", None) or type(plugin).__name__
        ok = self._load_candidate(_Candidate(name, distribution, version, False, lambda: plugin))
        self._check_encoder_modalities()
        return ok

    def _builtin_candidates(self) -> list[_Candidate]:
        return [
            _Candidate(mod, "anymodal", __version__, True,
                       functools.partial(importlib.import_module, mod))
            for mod in BUILTIN_PLUGINS
        ]

    def _module_candidates(self) -> list[_Candidate]:
        """Modules named in ``ANYMODAL_PLUGIN_MODULES`` (as pytest's ``-p``).

        A plugin in development, or a test's, is used so without packaging it.
        """
        names = [n.strip() for n in os.environ.get("ANYMODAL_PLUGIN_MODULES", "").split(",")]
        return [_Candidate(n, "(ANYMODAL_PLUGIN_MODULES)", "", False,
                           functools.partial(importlib.import_module, n)) for n in names if n]

    def _entry_point_candidates(self) -> list[_Candidate]:
        candidates = []
        for ep in sorted(_iter_entry_points(), key=lambda ep: ep.name):
            dist = getattr(ep, "dist", None)
            dist_name = dist.metadata["Name"] if dist is not None else "(unknown distribution)"
            version = dist.version if dist is not None else "?"
            if self.allow is not None and ep.name not in self.allow and dist_name not in self.allow:
                continue
            candidates.append(_Candidate(ep.name, dist_name, version, False, ep.load))
        return candidates

    def _load_candidate(self, c: _Candidate) -> bool:
        try:
            plugin = c.load() if c.builtin else bounded_import(c.load, c.name,
                                                               self.import_timeout)
        except KeyboardInterrupt:
            raise
        except ImportTimedOut as exc:
            return self._fail(c, str(exc))
        except BaseException as exc:  # anything, SystemExit included, is the plugin's failure
            return self._fail(c, f"failed to import: {type(exc).__name__}: {exc}")
        if c.name in self.plugins or self.pm.has_plugin(c.name):
            return self._fail(c, f"a plugin named {c.name!r} is already loaded")
        unknown = self._unknown_hooks(plugin)
        if unknown:
            known = ", ".join(sorted(self.pm.hook.__dict__))
            return self._fail(c, f"implements unknown hook(s) {unknown}; known hooks: {known}")
        try:
            self.pm.register(plugin, name=c.name)
        except Exception as exc:  # pluggy's PluginValidationError, ValueError
            return self._fail(c, f"invalid hook implementation: {exc}")
        try:
            staged = self._collect(plugin, c.name)
            self._check_duplicates(staged)
        except KeyboardInterrupt:
            raise
        except BaseException as exc:  # a register hook that exits is a failed plugin too
            self.pm.unregister(name=c.name)
            return self._fail(c, str(exc) if isinstance(exc, PluginError)
                              else f"raised in a register hook: {type(exc).__name__}: {exc}")
        info = PluginInfo(c.name, c.distribution, c.version,
                          getattr(plugin, "__name__", type(plugin).__name__), c.builtin)
        for kind, specs in staged.items():
            registry: Registry[Any] = getattr(self, kind)
            for spec in specs:
                registry.add(spec.name, spec, c.name)
                getattr(info, kind).append(spec.name)
        self.plugins[c.name] = info
        return True

    def _unknown_hooks(self, plugin: Any) -> list[str]:
        unknown = []
        for attr in dir(plugin):
            if not attr.startswith("anymodal_"):
                continue
            opts = self.pm.parse_hookimpl_opts(plugin, attr)
            if opts is not None and not hasattr(self.pm.hook, attr):
                unknown.append(attr)
        return unknown

    def _collect(self, plugin: Any, name: str) -> dict[str, list[Any]]:
        """Call this plugin's register hooks alone and return what it registered."""
        staged: dict[str, list[Any]] = {}
        for hook_name, kind, spec_type in _REGISTER_HOOKS:
            specs: list[Any] = []

            def register(spec: Any, _t: type = spec_type, _h: str = hook_name,
                         _s: list[Any] = specs) -> None:
                if not isinstance(spec, _t):
                    raise PluginError(
                        f"{_h} got {type(spec).__name__}, expected anymodal.{_t.__name__}"
                    )
                _s.append(spec)

            token = _REGISTERING.set(self)
            try:
                for impl in getattr(self.pm.hook, hook_name).get_hookimpls():
                    if impl.plugin_name == name:
                        impl.function(register=register)
            finally:
                _REGISTERING.reset(token)
            staged[kind] = specs
        return staged

    def _check_duplicates(self, staged: dict[str, list[Any]]) -> None:
        for kind, specs in staged.items():
            registry: Registry[Any] = getattr(self, kind)
            seen: set[str] = set()
            for spec in specs:
                if spec.name in registry:
                    raise PluginError(
                        f"registers {registry.kind} {spec.name!r}, already registered by "
                        f"plugin {registry.owner(spec.name)!r}"
                    )
                if spec.name in seen:
                    raise PluginError(f"registers {registry.kind} {spec.name!r} twice")
                seen.add(spec.name)

    def _check_encoder_modalities(self) -> None:
        for name, entry in self.encoders.items():
            if entry.spec.modality not in self.modalities:
                info = self.plugins[entry.plugin]
                failure = PluginFailure(
                    entry.plugin, info.distribution, info.version,
                    f"encoder {name!r} is for modality {entry.spec.modality!r}, which no "
                    "loaded plugin provides",
                )
                if failure in self.failures:  # register_plugin runs this check again
                    continue
                if self.strict:
                    raise PluginError(str(failure) + " (ANYMODAL_STRICT_PLUGINS is set)")
                self.failures.append(failure)

    def _fail(self, c: _Candidate, reason: str) -> bool:
        failure = PluginFailure(c.name, c.distribution, c.version, reason)
        if self.strict:
            raise PluginError(str(failure) + " (ANYMODAL_STRICT_PLUGINS is set)")
        self.failures.append(failure)
        return False

    # -- queries -------------------------------------------------------------------------

    def plugin_for(self, kind: str, name: str) -> PluginInfo:
        """The plugin that provided modality/encoder/objective ``name``."""
        registry: Registry[Any] = getattr(self, kind)
        return self.plugins[registry.owner(name)]

    def failure_for(self, name: str) -> PluginFailure | None:
        """The failure of the plugin or distribution ``name``, if it failed to load."""
        for failure in self.failures:
            if failure.name == name or failure.distribution == name:
                return failure
        return None


_MANAGER: PluginManager | None = None
_LOCK = threading.RLock()
_LOADING = False


def get_plugin_manager() -> PluginManager:
    """The process-wide plugin manager, loaded at the first call (never at import time)."""
    global _MANAGER, _LOADING
    if _MANAGER is None:
        with _LOCK:
            if _LOADING:
                raise PluginError(
                    "a plugin asked for the plugin registry while plugins were loading (at "
                    "import time or in a register hook); look names up later, when they are used"
                )
            if _MANAGER is None:
                _LOADING = True
                try:
                    _MANAGER = PluginManager().load()
                finally:
                    _LOADING = False
    return _MANAGER


def reset_plugin_manager(manager: PluginManager | None = None) -> None:
    """Forget the loaded plugins (or install ``manager``): the next call reloads them."""
    global _MANAGER
    _MANAGER = manager



# -- the public lookups ---------------------------------------------------------------------


def list_modalities() -> list[str]:
    """The names of every registered modality."""
    return get_plugin_manager().modalities.names()


def list_encoders(modality: str | None = None) -> list[str]:
    """The names of every registered encoder, or only those of ``modality``."""
    registry = get_plugin_manager().encoders
    return [n for n in registry.names() if modality is None or registry.get(n).modality == modality]


def list_objectives() -> list[str]:
    """The names of every registered objective."""
    return get_plugin_manager().objectives.names()


def get_modality(name: str, **params: Any) -> ModalitySpec:
    """The modality ``name``, with its options set from ``params`` when it has any.

    Raises:
        PluginError: no such modality (the message lists the registered ones).
        ConfigError: a param the modality's ``config_cls`` does not define, or of the wrong type.
    """
    spec = get_plugin_manager().modalities.get(name)
    if spec.config_cls is None:
        build_params(None, params, f"modality {name!r}")
        return spec
    if spec.configure is None:
        raise PluginError(f"modality {name!r} has a config_cls but no configure function")
    # Options missing from params keep the registered spec's values (a derived modality's
    # defaults differ from its config_cls's): OmegaConf reads an instance as the schema.
    defaults = spec.config if spec.config is not None else spec.config_cls
    return spec.configure(build_params(defaults, params, f"modality {name!r}"))


def get_encoder_spec(name: str) -> EncoderSpec:
    """The spec of the registered encoder ``name`` (a PluginError listing them otherwise)."""
    return get_plugin_manager().encoders.get(name)


def create_encoder(name: str, modality: ModalitySpec | None = None, **params: Any) -> Any:
    """Build the encoder ``name`` with ``params`` validated against its config dataclass.

    Args:
        name: a registered encoder.
        modality: the configured modality it will read; the params the encoder binds
            (``EncoderSpec.binds``) are then set from its options.
        **params: the user's params.
    """
    from anymodal.authoring import bind_encoder_params

    spec = get_encoder_spec(name)
    params = bind_encoder_params(spec, modality, params)
    module = spec.factory(build_params(spec.config_cls, params, f"encoder {name!r}"))
    owner = get_plugin_manager().encoders.owner(name)
    if not isinstance(getattr(module, "width", None), int):
        raise PluginError(
            f"encoder {name!r} (plugin {owner!r}) built a module without an int attribute "
            "'width'"
        )
    if modality is not None:
        check_output_width(module, modality, f"encoder {name!r} (plugin {owner!r})")
    return module


def check_output_width(module: Any, modality: ModalitySpec, what: str) -> None:
    """Run ``module`` on two synthesized items and check it returns ``[2, module.width]``.

    A wrong width would otherwise fail deep inside the projection head, naming nothing.

    Args:
        module: the built encoder.
        modality: the configured modality whose ``synthesize``/``collate`` make the batch.
        what: how the encoder is named in the error.

    Raises:
        PluginError: the output is not a ``[2, width]`` tensor.
    """
    import torch

    items = modality.synthesize(2, torch.Generator().manual_seed(0))
    was_training = module.training
    module.eval()
    try:
        with torch.no_grad():
            out = module(modality.collate(list(items)))
    finally:
        module.train(was_training)
    shape = tuple(out.shape) if torch.is_tensor(out) else type(out).__name__
    if shape != (2, module.width):
        raise PluginError(f"{what} returned {shape} for a batch of 2 {modality.name!r} items; "
                          f"expected (2, {module.width}): [batch, width] with its declared "
                          "width")


def lookup_registered(kind: str, name: str) -> Any:
    """The spec ``name`` of ``kind`` (``"modalities"``, ``"encoders"``...).

    It also works from inside a register hook, where it sees the plugins that loaded
    before (see the order above).

    Args:
        kind: the registry (``"modalities"``, ``"encoders"``, ``"objectives"``...).
        name: the registered name.

    Raises:
        PluginError: ``name`` is not registered (yet).
    """
    manager = _REGISTERING.get() or get_plugin_manager()
    registry: Registry[Any] = getattr(manager, kind)
    if name not in registry and _REGISTERING.get() is not None:
        raise PluginError(
            f"{registry.kind} {name!r} is not registered before this plugin (order: built-ins, "
            f"then entry points by name); registered so far: {', '.join(registry.names())}"
        )
    return registry.get(name)


def list_datasets() -> list[str]:
    """The names of every registered data set builder."""
    return get_plugin_manager().datasets.names()


def build_dataset_files(name: str, out_dir: str | Path, **params: Any) -> Path:
    """Run the data set builder ``name`` into ``out_dir``; returns the manifest path."""
    spec = get_plugin_manager().datasets.get(name)
    return Path(spec.build(Path(out_dir), build_params(spec.config_cls, params,
                                                       f"dataset {name!r}")))


def create_objective(name: str, **params: Any) -> Any:
    """Build the objective ``name`` with ``params`` validated against its config dataclass."""
    spec = get_plugin_manager().objectives.get(name)
    return spec.factory(build_params(spec.config_cls, params, f"objective {name!r}"))
