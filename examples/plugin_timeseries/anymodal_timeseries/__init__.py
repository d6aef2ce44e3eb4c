"""anymodal-timeseries: a third-party anymodal plugin for multichannel time series.

The entry point ``[project.entry-points.anymodal] timeseries = "anymodal_timeseries"``
names this module: anymodal imports it when the registry is first needed and calls the two
hooks below. Keep this import cheap (heavy libraries belong inside functions), and never
look anything up in anymodal's registry here: plugins are still loading at that moment.
"""

from __future__ import annotations

from typing import Any

from anymodal import EncoderSpec, hookimpl
from anymodal_timeseries.config import TimeseriesConfig
from anymodal_timeseries.encoder import TimeseriesCNN1d, TimeseriesCNN1dConfig
from anymodal_timeseries.modality import make_timeseries_modality

__version__ = "0.1.0"

__all__ = [
    "TimeseriesCNN1d",
    "TimeseriesCNN1dConfig",
    "TimeseriesConfig",
    "__version__",
    "anymodal_register_encoders",
    "anymodal_register_modalities",
    "make_timeseries_modality",
]


@hookimpl
def anymodal_register_modalities(register: Any) -> None:
    """Provide the ``timeseries`` modality with its default options."""
    register(make_timeseries_modality(TimeseriesConfig()))


@hookimpl
def anymodal_register_encoders(register: Any) -> None:
    """Provide ``timeseries_cnn1d`` (the class itself is the factory: ``cls(config)``)."""
    register(EncoderSpec(
        name="timeseries_cnn1d",
        modality="timeseries",
        factory=TimeseriesCNN1d,
        config_cls=TimeseriesCNN1dConfig,
        description="residual dilated 1-D CNN, LayerNorm, masked mean+max pooling",
    ))
