"""The plugin authoring kit: a modality is an options dataclass and four functions.

A whole plugin module (the entry point names it)::

    @dataclass
    class SeriesConfig:            # the modality's options, with defaults
        channels: int = 3
        num_classes: int = 4

    def load_series(source, config): ...
    def transform_series(raw, train, config): ...
    def collate_series(items): ...
    def synthesize_series(n, generator, labels=None, config=None): ...

    @anymodal.encoder("series_cnn", config=SeriesCNNConfig, binds={"in_channels": "channels"})
    class SeriesCNN(nn.Module): ...

    SERIES = anymodal.define_modality(
        "series", SeriesConfig, load=load_series, transform=transform_series,
        collate=collate_series, synthesize=synthesize_series, default_encoder="series_cnn")

    anymodal_register_modalities, anymodal_register_encoders = anymodal.plugin_hooks(
        modalities=[SERIES], encoders=[SeriesCNN])

- :func:`define_modality` binds the options into every function that takes a ``config``
  argument (``functools.partial``, so specs pickle into spawned DataLoader workers) and
  generates ``configure``.
- :func:`encoder` (timm's ``register_model`` style) names an encoder
  ``<modality>_<arch>[_<size>]`` and declares which of its params follow the modality's
  options (``binds``): built for a configured modality, the encoder receives them, so a
  recipe states ``n_mels`` once, under ``options``.
- :func:`derive_modality` / :func:`derive_encoder` build on what is already registered
  (see :func:`anymodal.plugin_host.manager.lookup_registered` for the order).
"""

from __future__ import annotations

import dataclasses
import inspect
import re
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from functools import partial
from typing import Any, TypeVar

from anymodal.errors import ConfigError, PluginError
from anymodal.plugin_host.hookspecs import hookimpl
from anymodal.types import EncoderSpec, ModalitySpec
from anymodal.utils.params import build_params

__all__ = [
    "bind_encoder_params",
    "define_modality",
    "derive_encoder",
    "derive_modality",
    "encoder",
    "plugin_hooks",
    "synthetic_labels",
]

F = TypeVar("F", bound=Callable[..., Any])
_NAME = re.compile(r"^[a-z][a-z0-9]*(?:_[a-z0-9]+)+$")
ENCODER_SPEC_ATTR = "encoder_spec"


@dataclass(frozen=True)
class _Blueprint:
    """What :func:`define_modality` was given; ``configure`` binds options into it."""

    name: str
    config_cls: type
    load: Callable[..., Any]
    transform: Callable[..., Any]
    collate: Callable[..., Any]
    synthesize: Callable[..., Any]
    default_encoder: str
    description: str
    validate: Callable[[Any], Any] | None
    num_classes: int | None
    prepare: Callable[..., Any] | None = None


def _takes_config(fn: Callable[..., Any]) -> bool:
    try:
        return "config" in inspect.signature(fn).parameters
    except (TypeError, ValueError):  # builtins without a signature take no config
        return False


def _bind(fn: Callable[..., Any], config: Any) -> Callable[..., Any]:
    return partial(fn, config=config) if _takes_config(fn) else fn


def configure_modality(config: Any, *, blueprint: _Blueprint) -> ModalitySpec:
    """The modality of ``blueprint`` with ``config`` bound (the spec's ``configure``).

    Args:
        config: an instance of the blueprint's options dataclass.
        blueprint: what :func:`define_modality` was given.

    Raises:
        ConfigError: ``config`` is of another type, or ``validate`` rejects it.
    """
    if not isinstance(config, blueprint.config_cls):
        raise ConfigError(f"modality {blueprint.name!r} takes a "
                          f"{blueprint.config_cls.__name__}, got {type(config).__name__}")
    if blueprint.validate is not None:
        config = blueprint.validate(config) or config
    num_classes = blueprint.num_classes
    if num_classes is None:
        num_classes = int(getattr(config, "num_classes", 1))
    return ModalitySpec(
        name=blueprint.name,
        load=_bind(blueprint.load, config),
        transform=_bind(blueprint.transform, config),
        collate=_bind(blueprint.collate, config),
        synthesize=_bind(blueprint.synthesize, config),
        default_encoder=blueprint.default_encoder,
        num_classes=num_classes,
        config_cls=blueprint.config_cls,
        configure=partial(configure_modality, blueprint=blueprint),
        description=blueprint.description,
        config=config,
        prepare=None if blueprint.prepare is None else _bind(blueprint.prepare, config),
    )


def define_modality(
    name: str,
    config_cls: type,
    *,
    load: Callable[..., Any],
    transform: Callable[..., Any],
    collate: Callable[..., Any],
    synthesize: Callable[..., Any],
    default_encoder: str,
    description: str = "",
    validate: Callable[[Any], Any] | None = None,
    num_classes: int | None = None,
    prepare: Callable[..., Any] | None = None,
) -> ModalitySpec:
    """A :class:`ModalitySpec` with the default options of ``config_cls`` bound.

    Each function that has a parameter named ``config`` receives the options instance
    (keyword); the others are used as given. ``get_modality(name, **options)`` calls the
    generated ``configure`` with the user's options.

    Args:
        name: the modality's registry name.
        config_cls: the options dataclass (every field with a default).
        load: ``load(source[, config]) -> raw``.
        transform: ``transform(raw, train[, config]) -> item``.
        collate: ``collate(items[, config]) -> batch value``.
        synthesize: ``synthesize(n, generator, labels=None[, config]) -> list[item]``.
        default_encoder: the encoder used when a recipe names none.
        description: one line for ``anymodal plugins``.
        validate: ``validate(config)`` raises :class:`anymodal.ConfigError` on options that
            cannot work (it may return a normalised config).
        num_classes: classes of the synthetic data; ``None``: the options' ``num_classes``.
        prepare: ``prepare(raw[, config]) -> prepared``: the deterministic prefix of
            ``transform``, which must accept ``prepared`` in place of ``raw`` and give the
            same item from the same random state (the sample cache stores ``prepared``).

    Raises:
        PluginError: ``config_cls`` is not a dataclass, or a field has no default.
    """
    if not (isinstance(config_cls, type) and dataclasses.is_dataclass(config_cls)):
        raise PluginError(f"modality {name!r}: config_cls {config_cls!r} is not a dataclass")
    try:
        default = config_cls()
    except TypeError as exc:
        raise PluginError(f"modality {name!r}: every option of {config_cls.__name__} needs a "
                          f"default ({exc})") from None
    blueprint = _Blueprint(name, config_cls, load, transform, collate, synthesize,
                           default_encoder, description, validate, num_classes, prepare)
    return configure_modality(default, blueprint=blueprint)


def _normalise_binds(binds: Mapping[str, str] | Iterable[str] | None) -> dict[str, str]:
    if binds is None:
        return {}
    if isinstance(binds, Mapping):
        return {str(k): str(v) for k, v in binds.items()}
    return {str(k): str(k) for k in binds}


def _check_encoder_name(name: str, modality: str) -> None:
    if not _NAME.match(name) or not name.startswith(modality + "_"):
        raise PluginError(
            f"encoder name {name!r} does not follow <modality>_<arch>[_<size>] (lowercase, "
            f"underscores) for modality {modality!r}, e.g. {modality}_cnn_small"
        )


def _first_line(doc: str | None) -> str:
    return (doc or "").strip().splitlines()[0].strip() if (doc or "").strip() else ""


def encoder(name: str, *, config: type, modality: str | None = None,
            binds: Mapping[str, str] | Iterable[str] | None = None,
            description: str | None = None) -> Callable[[F], F]:
    """Declare a class (or factory function) as the encoder ``name``.

    The decorated object is returned unchanged, with its :class:`EncoderSpec` in the
    attribute ``encoder_spec``; :func:`plugin_hooks` registers it.

    Args:
        name: ``<modality>_<arch>[_<size>]`` (``audio_ast_tiny``).
        config: the dataclass of its hyper-parameters; ``factory(config_instance)``.
        modality: the modality it encodes; defaults to the part of ``name`` before the
            first underscore (give it when the modality's name has an underscore).
        binds: encoder param -> modality option (or a list of names shared by both): the
            params set from the modality's bound options.
        description: one line for ``anymodal plugins``; defaults to the docstring's first
            line.

    Raises:
        PluginError: a bad name, or ``binds`` names a param ``config`` does not have.
    """
    modality = modality or name.split("_", 1)[0]
    _check_encoder_name(name, modality)
    bound = _normalise_binds(binds)
    if not dataclasses.is_dataclass(config):
        raise PluginError(f"encoder {name!r}: config {config!r} is not a dataclass")
    fields = {f.name for f in dataclasses.fields(config)}
    unknown = sorted(set(bound) - fields)
    if unknown:
        raise PluginError(f"encoder {name!r}: binds params {unknown} that "
                          f"{config.__name__} does not define")

    def decorate(factory: F) -> F:
        spec = EncoderSpec(name, modality, factory, config,
                           description if description is not None else _first_line(
                               factory.__doc__), binds=bound)
        setattr(factory, ENCODER_SPEC_ATTR, spec)
        return factory

    return decorate


def bind_encoder_params(spec: EncoderSpec, modality: ModalitySpec | None,
                        params: Mapping[str, Any] | Any) -> dict[str, Any]:
    """``params`` completed with the options ``spec.binds`` takes from ``modality``.

    Args:
        spec: the encoder.
        modality: the configured modality it will read (``None``: nothing is bound).
        params: the user's params (a mapping).

    An option that is ``None`` (unset) binds nothing.

    Raises:
        ConfigError: a user param differs from the option it is bound to (the encoder
            would not fit its input), naming both.
    """
    if not isinstance(params, Mapping):
        raise ConfigError(f"encoder {spec.name!r}: params must be a mapping of names to "
                          f"values, got {type(params).__name__}")
    out = dict(params)
    if modality is None or modality.config is None or not spec.binds:
        return out
    for param, option in spec.binds.items():
        try:
            value = getattr(modality.config, option)
        except AttributeError:
            raise PluginError(f"encoder {spec.name!r} binds param {param!r} to option "
                              f"{option!r}, which modality {modality.name!r} lacks") from None
        if value is None:  # an option left unset binds nothing
            continue
        if param in out and out[param] != value:
            raise ConfigError(
                f"encoder {spec.name!r}: param {param}={out[param]!r} differs from the "
                f"{modality.name!r} option {option}={value!r} it follows; leave {param!r} "
                "out of params (it is set from the option)"
            )
        out[param] = value
    return out


def _encoder_spec(entry: Any) -> EncoderSpec:
    if isinstance(entry, EncoderSpec):
        return entry
    spec = getattr(entry, ENCODER_SPEC_ATTR, None)
    if isinstance(spec, EncoderSpec):
        return spec
    if callable(entry):
        made = entry()
        if isinstance(made, EncoderSpec):
            return made
    raise PluginError(f"{entry!r} is not an EncoderSpec, an @anymodal.encoder class, or a "
                      "function returning an EncoderSpec")


def _modality_spec(entry: Any) -> ModalitySpec:
    spec = entry if isinstance(entry, ModalitySpec) else entry()
    if not isinstance(spec, ModalitySpec):
        raise PluginError(f"{entry!r} gave {type(spec).__name__}, expected a ModalitySpec")
    return spec


def plugin_hooks(*, modalities: Iterable[Any] = (), encoders: Iterable[Any] = ()
                 ) -> tuple[Callable[..., None], Callable[..., None]]:
    """The two register hooks of a plugin module, from what it provides.

    Assign them at module level: ``anymodal_register_modalities,
    anymodal_register_encoders = plugin_hooks(...)``.

    Args:
        modalities: :class:`ModalitySpec` objects, or functions returning one, called when
            the plugin registers (so they may look up what is already registered, e.g.
            :func:`derive_modality`).
        encoders: ``@encoder`` classes or functions, :class:`EncoderSpec` objects, or
            functions returning one (called when the plugin registers).
    """
    modality_entries, encoder_entries = tuple(modalities), tuple(encoders)

    @hookimpl
    def anymodal_register_modalities(register: Callable[[ModalitySpec], None]) -> None:
        for entry in modality_entries:
            register(_modality_spec(entry))

    @hookimpl
    def anymodal_register_encoders(register: Callable[[EncoderSpec], None]) -> None:
        for entry in encoder_entries:
            register(_encoder_spec(entry))

    return anymodal_register_modalities, anymodal_register_encoders


def _configure_derived(config: Any, *, name: str, base: Callable[[Any], ModalitySpec],
                       default_encoder: str, description: str) -> ModalitySpec:
    spec = base(config)
    return dataclasses.replace(
        spec, name=name, default_encoder=default_encoder, description=description,
        configure=partial(_configure_derived, name=name, base=base,
                          default_encoder=default_encoder, description=description),
    )


def _renamed(encoder_name: str, base: str, name: str) -> str:
    """``audio_ast_tiny`` of ``audio`` -> ``my_audio_ast_tiny`` of ``my_audio``."""
    suffix = encoder_name[len(base):] if encoder_name.startswith(base + "_") else (
        "_" + encoder_name)
    return name + suffix


def derive_modality(name: str, base: str, *, default_encoder: str | None = None,
                    description: str | None = None, **options: Any) -> ModalitySpec:
    """A new modality ``name`` that works as the registered ``base``, with its own defaults.

    It reads, prepares and batches as ``base``, with ``options`` as its default options.

    Call it from a register hook (or a function given to :func:`plugin_hooks`): ``base``
    must already be registered (built-ins first, then plugins by entry-point name).

    Args:
        name: the new modality's name.
        base: a registered modality (``"vector"``, ``"audio"``).
        default_encoder: the new modality's default encoder (register one for it with
            :func:`derive_encoder`); defaults to the base's default encoder renamed
            (``audio_ast_tiny`` -> ``my_audio_ast_tiny``).
        description: one line for ``anymodal plugins``.
        **options: defaults of the base's options for the new modality.

    Raises:
        PluginError: ``base`` is not registered (yet), or has no options to derive from.
        ConfigError: an option ``base`` does not define, or of the wrong type.
    """
    from anymodal.plugin_host.manager import lookup_registered

    parent: ModalitySpec = lookup_registered("modalities", base)
    if parent.config_cls is None or parent.configure is None:
        raise PluginError(f"modality {name!r} cannot derive from {base!r}: it has no options")
    config = build_params(parent.config_cls, options, f"modality {name!r} (from {base!r})")
    return _configure_derived(
        config, name=name, base=parent.configure,
        default_encoder=default_encoder or _renamed(parent.default_encoder, base, name),
        description=description or f"{parent.description} (as {name!r}, from {base!r})",
    )


def derive_encoder(name: str, base: str, modality: str,
                   description: str | None = None) -> EncoderSpec:
    """The registered encoder ``base`` offered for the (derived) ``modality`` as ``name``.

    Args:
        name: ``<modality>_<arch>[_<size>]``.
        base: a registered encoder.
        modality: the modality the new name encodes.
        description: one line for ``anymodal plugins``.

    Raises:
        PluginError: ``base`` is not registered (yet), or ``name`` breaks the naming rule.
    """
    from anymodal.plugin_host.manager import lookup_registered

    _check_encoder_name(name, modality)
    parent: EncoderSpec = lookup_registered("encoders", base)
    return dataclasses.replace(parent, name=name, modality=modality,
                               description=description or f"{parent.description} "
                               f"(as {name!r}, from {base!r})")


def synthetic_labels(n: int, generator: Any, labels: Any, num_classes: int) -> list[int]:
    """The class of each of ``n`` synthetic items, for a modality's ``synthesize``.

    Args:
        n: number of items.
        generator: the ``torch.Generator`` every random choice comes from.
        labels: the classes asked for (``LongTensor[>= n]``, wrapped into
            ``[0, num_classes)``), or ``None``: drawn uniformly from ``generator``.
        num_classes: classes the modality can draw.
    """
    import torch  # not at import time: listing plugins stays light

    if labels is None:
        labels = torch.randint(0, num_classes, (n,), generator=generator)
    return [int(label) % num_classes for label in torch.as_tensor(labels)[:n].tolist()]
