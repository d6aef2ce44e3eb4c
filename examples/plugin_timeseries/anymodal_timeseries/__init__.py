"""anymodal-timeseries: a third-party anymodal plugin for multichannel time series.

The entry point ``[project.entry-points.anymodal] timeseries = "anymodal_timeseries"``
names this module: anymodal imports it when the registry is first needed and calls the two
hooks that :func:`anymodal.plugin_hooks` makes below. Keep this import cheap (heavy
libraries belong inside functions).

The whole plugin is the options dataclass (``config.py``), four functions (``io.py``,
``transforms.py``, ``synthetic.py``), an ``@anymodal.encoder`` class (``encoder.py``)
and the few lines below.
"""

from __future__ import annotations

import anymodal
from anymodal_timeseries.config import TimeseriesConfig
from anymodal_timeseries.encoder import TimeseriesCNN1d, TimeseriesCNN1dConfig
from anymodal_timeseries.io import load_series
from anymodal_timeseries.synthetic import synthesize_series
from anymodal_timeseries.transforms import collate_series, transform_series

__version__ = "0.1.0"

__all__ = [
    "TIMESERIES",
    "TimeseriesCNN1d",
    "TimeseriesCNN1dConfig",
    "TimeseriesConfig",
    "__version__",
    "anymodal_register_encoders",
    "anymodal_register_modalities",
]

# Every function that takes a ``config`` argument receives the options (a partial, so the
# spec pickles into DataLoader workers); get_modality("timeseries", channels=6) rebinds.
TIMESERIES = anymodal.define_modality(
    "timeseries", TimeseriesConfig, load=load_series, transform=transform_series,
    collate=collate_series, synthesize=synthesize_series, default_encoder="timeseries_cnn1d",
    description="multichannel time series [T, C] from CSV or .npy files",
)

anymodal_register_modalities, anymodal_register_encoders = anymodal.plugin_hooks(
    modalities=[TIMESERIES], encoders=[TimeseriesCNN1d])
