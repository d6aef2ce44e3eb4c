"""The ``timeseries`` :class:`anymodal.ModalitySpec`, with its options bound."""

from __future__ import annotations

from functools import partial

from anymodal import ModalitySpec
from anymodal_timeseries.config import TimeseriesConfig
from anymodal_timeseries.io import load_series
from anymodal_timeseries.synthetic import synthesize_series
from anymodal_timeseries.transforms import collate_series, transform_series

__all__ = ["make_timeseries_modality"]


def make_timeseries_modality(config: TimeseriesConfig) -> ModalitySpec:
    """The spec whose functions use ``config``; also its ``configure`` function.

    ``functools.partial`` of module-level functions, never lambdas or closures: the spec's
    functions must pickle, because DataLoader workers started by ``spawn`` receive them.
    """
    return ModalitySpec(
        name="timeseries",
        load=partial(load_series, config=config),
        transform=partial(transform_series, config=config),
        collate=collate_series,
        synthesize=partial(synthesize_series, config=config),
        default_encoder="timeseries_cnn1d",
        num_classes=config.num_classes,
        config_cls=TimeseriesConfig,
        configure=make_timeseries_modality,
        description="multichannel time series [T, C] from CSV or .npy files",
    )
