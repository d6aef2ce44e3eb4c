"""The options of the ``timeseries`` modality."""

from __future__ import annotations

from dataclasses import dataclass

from anymodal import ConfigError

__all__ = ["TimeseriesConfig"]


@dataclass
class TimeseriesConfig:
    """Options of the ``timeseries`` modality, set with
    ``anymodal.get_modality("timeseries", channels=6, length=256)``.

    Args:
        channels: number of channels every series must have (columns of a CSV file, the
            ``C`` of a ``[T, C]`` ``.npy`` array).
        length: the fixed number of time steps of a model-ready item; longer series are
            cropped (at random in training, in the centre in evaluation), shorter ones are
            zero-padded and their padding is marked in the item's mask.
        num_classes: classes of the synthetic data: class ``k`` is waveform ``k % 4``
            (sine, square, sawtooth, noise) at the ``k // 4``-th frequency band.
        noise: standard deviation of the Gaussian noise added to synthetic series.
        eps: added to the per-channel standard deviation, so that a constant channel
            becomes zeros instead of NaN.
    """

    channels: int = 3
    length: int = 128
    num_classes: int = 4
    noise: float = 0.1
    eps: float = 1e-5

    def __post_init__(self) -> None:
        # Checked here so that a bad value fails at get_modality(), naming the option,
        # rather than as a shape error deep inside a training step.
        for name in ("channels", "length", "num_classes"):
            if getattr(self, name) < 1:
                raise ConfigError(
                    f"modality 'timeseries': option {name} must be >= 1, got {getattr(self, name)}"
                )
        if self.noise < 0 or self.eps <= 0:
            raise ConfigError(
                f"modality 'timeseries': noise must be >= 0 and eps > 0, got noise={self.noise}, "
                f"eps={self.eps}"
            )
