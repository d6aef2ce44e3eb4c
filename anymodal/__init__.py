"""anymodal: contrastive learning across any number of modalities.

Importing ``anymodal`` loads no plugin and no torch: every public name below is imported
from its module at first use, and the registries fill at the first call that needs them
(``list_modalities()``, ``create_encoder()``...), because plugins import ``anymodal``.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from anymodal._version import __version__
from anymodal.errors import AnymodalError, ConfigError, DataError, PluginError

if TYPE_CHECKING:
    from anymodal import testing
    from anymodal.authoring import (
        define_modality,
        derive_encoder,
        derive_modality,
        encoder,
        plugin_hooks,
    )
    from anymodal.config import ExperimentConfig, load_config
    from anymodal.model import MultiModalModel, load_model
    from anymodal.plugin_host.hookspecs import hookimpl
    from anymodal.plugin_host.manager import (
        build_dataset_files,
        create_encoder,
        create_objective,
        get_encoder_spec,
        get_modality,
        get_plugin_manager,
        list_datasets,
        list_encoders,
        list_modalities,
        list_objectives,
        lookup_registered,
    )
    from anymodal.retrieval.index import Hit, Index
    from anymodal.retrieval.search import TupleHit, search, search_tuples
    from anymodal.types import (
        Batch,
        CommandSpec,
        DatasetSpec,
        DoctorCheck,
        EncoderSpec,
        ModalitySpec,
        ObjectiveSpec,
    )
    from anymodal.utils.native import capture_native_stderr, strip_native_prefix

__all__ = [
    "AnymodalError",
    "Batch",
    "CommandSpec",
    "ConfigError",
    "DataError",
    "DatasetSpec",
    "DoctorCheck",
    "EncoderSpec",
    "ExperimentConfig",
    "Hit",
    "Index",
    "ModalitySpec",
    "MultiModalModel",
    "ObjectiveSpec",
    "PluginError",
    "TupleHit",
    "__version__",
    "build_dataset_files",
    "capture_native_stderr",
    "create_encoder",
    "create_objective",
    "define_modality",
    "derive_encoder",
    "derive_modality",
    "encoder",
    "get_encoder_spec",
    "get_modality",
    "get_plugin_manager",
    "hookimpl",
    "list_datasets",
    "list_encoders",
    "list_modalities",
    "list_objectives",
    "load_config",
    "load_model",
    "lookup_registered",
    "plugin_hooks",
    "search",
    "search_tuples",
    "strip_native_prefix",
    "testing",
]

# module -> the public names it provides (imported at first use).
_EXPORTS: dict[str, tuple[str, ...]] = {
    "anymodal.authoring": ("define_modality", "derive_encoder", "derive_modality", "encoder",
                           "plugin_hooks"),
    "anymodal.plugin_host.hookspecs": ("hookimpl",),
    "anymodal.utils.native": ("capture_native_stderr", "strip_native_prefix"),
    "anymodal.plugin_host.manager": ("build_dataset_files", "create_encoder", "create_objective",
                                     "get_encoder_spec", "get_modality", "get_plugin_manager",
                                     "list_datasets", "list_encoders", "list_modalities",
                                     "list_objectives", "lookup_registered"),
    "anymodal.types": ("Batch", "CommandSpec", "DatasetSpec", "DoctorCheck", "EncoderSpec",
                       "ModalitySpec", "ObjectiveSpec"),
    "anymodal.config": ("ExperimentConfig", "load_config"),
    "anymodal.model": ("MultiModalModel", "load_model"),
    "anymodal.retrieval.index": ("Hit", "Index"),
    "anymodal.retrieval.search": ("TupleHit", "search", "search_tuples"),
}
_LAZY = {name: module for module, names in _EXPORTS.items() for name in names}
_LAZY_MODULES = {"testing": "anymodal.testing"}



def __getattr__(name: str) -> Any:
    if name in _LAZY_MODULES:
        value = importlib.import_module(_LAZY_MODULES[name])
    elif name in _LAZY:
        value = getattr(importlib.import_module(_LAZY[name]), name)
    else:
        raise AttributeError(f"module 'anymodal' has no attribute {name!r}")
    globals()[name] = value  # the next access is a plain attribute lookup
    return value


def __dir__() -> list[str]:
    return sorted({*globals(), *__all__})
