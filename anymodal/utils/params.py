"""Turning a user's ``{key: value}`` params into a validated config dataclass."""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from typing import Any

from omegaconf import DictConfig, OmegaConf
from omegaconf.errors import OmegaConfBaseException

from anymodal.errors import ConfigError
from anymodal.plugin_host.registry import suggest

__all__ = ["build_params", "params_to_dict"]


def build_params(config_cls: type | None, params: Mapping[str, Any] | None, what: str) -> Any:
    """Validate ``params`` against the dataclass ``config_cls`` and return an instance.

    Unknown keys and values of the wrong type raise :class:`ConfigError` naming ``what``
    (e.g. ``"encoder 'audio_ast_tiny'"``), the key, and the valid keys.

    Args:
        config_cls: a dataclass type (``None`` means the thing takes no params).
        params: the user's values; nested dicts fill nested dataclasses.
        what: how to name the owner of the params in messages.
    """
    params = dict(params or {})
    if isinstance(params, DictConfig):
        params = OmegaConf.to_container(params, resolve=True)  # type: ignore[assignment]
    if config_cls is None:
        if params:
            raise ConfigError(f"{what} takes no params, got {sorted(params)}")
        return None
    if not dataclasses.is_dataclass(config_cls):
        raise ConfigError(f"{what}: config_cls {config_cls!r} is not a dataclass")
    valid = [f.name for f in dataclasses.fields(config_cls)]
    unknown = [key for key in params if key not in valid]
    if len(unknown) == 1:
        raise ConfigError(f"{what} has no param {unknown[0]!r}; {suggest(unknown[0], valid)}")
    if unknown:  # every typo at once, not one per attempt
        raise ConfigError(f"{what} has no params {unknown}; valid params: "
                          f"{', '.join(sorted(valid))}")
    try:
        schema = OmegaConf.structured(config_cls)
        merged = OmegaConf.merge(schema, params)
        return OmegaConf.to_object(merged)
    except ConfigError as exc:  # the dataclass's own check (__post_init__): say whose
        raise ConfigError(f"{what}: {exc}") from None
    except OmegaConfBaseException as exc:
        key = getattr(exc, "full_key", None) or getattr(exc, "key", None) or "?"
        expected = _field_type(config_cls, str(key))
        raise ConfigError(
            f"{what}: bad value for param {key!r}"
            + (f" (expected {expected})" if expected else "")
            + f": {str(getattr(exc, 'msg', exc)).splitlines()[0]}"
        ) from None


def params_to_dict(config: Any) -> dict[str, Any]:
    """The plain dict of a config dataclass instance (for saving)."""
    if config is None:
        return {}
    return dataclasses.asdict(config)


def _field_type(config_cls: type, key: str) -> str:
    for f in dataclasses.fields(config_cls):
        if f.name == key.split(".")[0]:
            return getattr(f.type, "__name__", str(f.type))
    return ""
