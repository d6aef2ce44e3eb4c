"""Option and hyper-parameter dataclasses of the point-cloud modality and its encoders.

This module imports nothing heavy: the plugin manager reads it while listing plugins.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from anymodal import ConfigError

__all__ = [
    "FPS_STARTS",
    "MESH_SAMPLINGS",
    "SAMPLINGS",
    "UP_AXES",
    "PointBertConfig",
    "PointCloudConfig",
    "PointNetConfig",
    "validate_pointcloud_config",
]

SAMPLINGS = ("fps", "voxel", "random")
FPS_STARTS = ("random", "first")
MESH_SAMPLINGS = ("uniform", "poisson")
UP_AXES = ("x", "y", "z")


@dataclass
class PointCloudConfig:
    """Options of the ``pointcloud`` modality.

    An item is a float tensor ``[num_points, C]`` whose channels are ``xyz``, then ``rgb``
    in ``[0, 1]`` when ``use_colors``, then unit normals when ``use_normals``
    (so ``C`` is 3, 6 or 9). A cloud without colours gets neutral grey (0.5) when colours
    are asked for; a cloud without normals gets normals estimated by open3d (30 nearest
    neighbours, oriented away from the centroid).

    Args:
        num_points: points per item (``P``); every item has exactly this many, so a batch
            is a plain stack ``[B, P, C]``. Smaller clouds repeat points.
        sampling: how a larger cloud is brought down to ``num_points``: ``"fps"``
            (farthest-point sampling), ``"voxel"`` (voxel-grid averaging, the voxel size
            searched so that at least ``num_points`` voxels remain) or ``"random"``.
        fps_start: where farthest-point sampling starts in training: ``"random"`` (a
            random point, a new subset each epoch) or ``"first"`` (point 0, as in
            evaluation: the sampled points are then deterministic, and the sample cache
            stores them instead of running the sampling every epoch; PointNet++'s
            ModelNet loaders sample once, offline, in the same way).
        mesh_sampling: how a mesh's surface becomes points: ``"uniform"`` (area-weighted)
            or ``"poisson"`` (Poisson-disk, evenly spread; slower).
        mesh_oversample: a mesh is sampled to ``mesh_oversample * num_points`` points
            before ``sampling`` picks ``num_points`` of them.
        use_colors: add the three colour channels.
        use_normals: add the three normal channels.
        up_axis: the axis training rotations turn about (``"x"``, ``"y"`` or ``"z"``).
        rotate: training augmentation: a random rotation about ``up_axis``.
        scale_min: training augmentation: lower bound of the random isotropic scale.
        scale_max: upper bound of that scale (set both to 1 to turn scaling off).
        jitter_sigma: training augmentation: std of the Gaussian noise added to coordinates.
        jitter_clip: that noise is clipped to ``[-jitter_clip, jitter_clip]``.
        dropout_ratio: training augmentation (PointNet++'s point dropout): a random
            fraction in ``[0, dropout_ratio]`` of the points is replaced by the first point,
            so the shape keeps ``num_points`` rows. ``0`` turns it off.
        synth_noise: std of the noise added to the surfaces of synthetic primitives.
    """

    num_points: int = 1024
    sampling: str = "fps"
    fps_start: str = "random"
    mesh_sampling: str = "uniform"
    mesh_oversample: float = 2.0
    use_colors: bool = False
    use_normals: bool = False
    up_axis: str = "y"
    rotate: bool = True
    scale_min: float = 0.8
    scale_max: float = 1.25
    jitter_sigma: float = 0.01
    jitter_clip: float = 0.05
    dropout_ratio: float = 0.0
    synth_noise: float = 0.01

    @property
    def channels(self) -> int:
        """``C``: the number of channels of an item."""
        return 3 + 3 * int(self.use_colors) + 3 * int(self.use_normals)


def validate_pointcloud_config(config: PointCloudConfig) -> PointCloudConfig:
    """Raise :class:`anymodal.ConfigError` on an option value outside its allowed set."""
    what = "modality 'pointcloud'"
    if config.num_points < 1:
        raise ConfigError(f"{what}: num_points must be >= 1, got {config.num_points}")
    for key, value, allowed in (
        ("sampling", config.sampling, SAMPLINGS),
        ("fps_start", config.fps_start, FPS_STARTS),
        ("mesh_sampling", config.mesh_sampling, MESH_SAMPLINGS),
        ("up_axis", config.up_axis, UP_AXES),
    ):
        if value not in allowed:
            raise ConfigError(f"{what}: {key}={value!r}; valid choices: {', '.join(allowed)}")
    if not 0 < config.scale_min <= config.scale_max:
        raise ConfigError(
            f"{what}: need 0 < scale_min <= scale_max, got {config.scale_min}, {config.scale_max}"
        )
    if not 0.0 <= config.dropout_ratio < 1.0:
        raise ConfigError(f"{what}: dropout_ratio must be in [0, 1), got {config.dropout_ratio}")
    if config.mesh_oversample < 1.0:
        raise ConfigError(f"{what}: mesh_oversample must be >= 1, got {config.mesh_oversample}")
    return config


@dataclass
class PointNetConfig:
    """Hyper-parameters of ``pointcloud_pointnet`` (PointNet without the T-Nets).

    Args:
        in_channels: ``C`` of the items: 3, or 6/9 with colours/normals (set from the
            modality's ``channels``).
        channels: widths of the shared per-point MLP; the last one is max-pooled.
        head_hidden: width of the hidden layer of the head after pooling.
        width: output width.
        dropout: dropout in the head.
    """

    in_channels: int = 3
    channels: list[int] = field(default_factory=lambda: [64, 128, 256])
    head_hidden: int = 256
    width: int = 256
    dropout: float = 0.0


@dataclass
class PointBertConfig:
    """Hyper-parameters of ``pointcloud_pointbert_tiny`` (Point-BERT / ULIP point encoder).

    Args:
        in_channels: ``C`` of the items (set from the modality's ``channels``).
        num_groups: patch centres chosen by farthest-point sampling.
        group_size: points per patch (nearest neighbours of each centre).
        dim: token width of the transformer.
        depth: transformer layers.
        heads: attention heads.
        mlp_ratio: hidden width of each transformer MLP, as a multiple of ``dim``.
        dropout: dropout inside the transformer.
        width: output width (the head reads the class token and the max-pooled tokens).
    """

    in_channels: int = 3
    num_groups: int = 32
    group_size: int = 16
    dim: int = 128
    depth: int = 4
    heads: int = 4
    mlp_ratio: float = 2.0
    dropout: float = 0.0
    width: int = 256
