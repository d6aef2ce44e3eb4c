"""anymodal: contrastive learning across any number of modalities.

Importing ``anymodal`` loads no plugin: the registries fill at the first call that needs
them (``list_modalities()``, ``create_encoder()``...), because plugins import ``anymodal``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from anymodal._version import __version__
from anymodal.authoring import (
    define_modality,
    derive_encoder,
    derive_modality,
    encoder,
    plugin_hooks,
)
from anymodal.errors import AnymodalError, ConfigError, DataError, PluginError
from anymodal.hookspecs import hookimpl
from anymodal.native import capture_native_stderr, strip_native_prefix
from anymodal.plugins import (
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
from anymodal.types import (
    Batch,
    DatasetSpec,
    DoctorCheck,
    EncoderSpec,
    ModalitySpec,
    ObjectiveSpec,
)

if TYPE_CHECKING:
    from anymodal import testing
    from anymodal.config import ExperimentConfig, load_config
    from anymodal.model import MultiModalModel, load_model

__all__ = [
    "AnymodalError",
    "Batch",
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

# Heavier parts load on first use so that ``import anymodal`` stays cheap for plugins.
_LAZY = {
    "ExperimentConfig": ("anymodal.config", "ExperimentConfig"),
    "load_config": ("anymodal.config", "load_config"),
    "MultiModalModel": ("anymodal.model", "MultiModalModel"),
    "load_model": ("anymodal.model", "load_model"),
    "testing": ("anymodal.testing", None),
    "Index": ("anymodal.retrieval.index", "Index"),
    "Hit": ("anymodal.retrieval.index", "Hit"),
    "TupleHit": ("anymodal.retrieval.search", "TupleHit"),
    "search": ("anymodal.retrieval.search", "search"),
    "search_tuples": ("anymodal.retrieval.search", "search_tuples"),
}


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        import importlib

        module_name, attr = _LAZY[name]
        module = importlib.import_module(module_name)
        value = module if attr is None else getattr(module, attr)
        globals()[name] = value
        return value
    raise AttributeError(f"module 'anymodal' has no attribute {name!r}")
