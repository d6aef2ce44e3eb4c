"""The built-in ``vector`` modality (fixed-size float vectors) and its ``vector_mlp`` encoder.

It makes the core usable and testable with no media plugin installed: recipes can declare
several vector modalities (``modalities: {a: {modality: vector}, b: {modality: vector}}``)
whose synthetic items are different random views of shared class prototypes.
"""

from __future__ import annotations

import io
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from anymodal.authoring import define_modality, encoder, plugin_hooks
from anymodal.errors import DataError

LATENT_DIM = 16


@dataclass
class VectorConfig:
    """Options of the vector modality.

    Args:
        dim: length of every vector.
        num_classes: classes of the synthetic data.
        view_seed: seed of this view's fixed random map from class latents to vectors;
            give each vector modality of a recipe its own.
        noise: standard deviation of the synthetic noise.
        train_noise: Gaussian noise added by ``transform`` in training (augmentation).
    """

    dim: int = 32
    num_classes: int = 16
    view_seed: int = 0
    noise: float = 0.3
    train_noise: float = 0.0


def load_vector(source: Any, config: VectorConfig) -> torch.Tensor:
    """Read a vector from a ``.npy`` file, a list/array/tensor, or a comma-separated string."""
    name = source if isinstance(source, (str, Path)) else type(source).__name__
    try:
        if isinstance(source, Path) or (isinstance(source, str) and source.endswith(".npy")):
            path = Path(source)
            if not path.exists():
                raise DataError(path, "file not found (expected a .npy vector)")
            with path.open("rb") as handle:
                if handle.read(6) != b"\x93NUMPY":
                    raise DataError(path, "not a readable .npy array (no .npy header)")
            try:
                array = np.load(path, allow_pickle=False)
            except Exception as exc:  # numpy raises ValueError/OSError/EOFError on bad files
                raise DataError(path, f"not a readable .npy array ({exc})") from None
        elif isinstance(source, (bytes, bytearray)):
            try:
                array = np.load(io.BytesIO(source), allow_pickle=False)
            except Exception as exc:
                raise DataError(name, f"bytes are not a readable .npy array ({exc})") from None
        elif isinstance(source, str):
            array = np.array([float(v) for v in source.split(",")], dtype=np.float32)
        else:
            array = np.asarray(source.detach().cpu() if torch.is_tensor(source) else source)
    except DataError:
        raise
    except (TypeError, ValueError) as exc:
        raise DataError(name, f"cannot be read as a float vector ({exc})") from None
    vector = torch.as_tensor(np.asarray(array, dtype=np.float32)).reshape(-1)
    if vector.numel() != config.dim:
        raise DataError(name, f"has {vector.numel()} values, expected dim={config.dim}")
    if not torch.isfinite(vector).all():
        raise DataError(name, "contains NaN or infinite values")
    return vector


def transform_vector(raw: torch.Tensor, train: bool, config: VectorConfig) -> torch.Tensor:
    """``raw``, plus Gaussian noise of ``train_noise`` in training."""
    if train and config.train_noise > 0:
        return raw + config.train_noise * torch.randn_like(raw)
    return raw


# Random only with training noise: what the feature cache reads (anymodal.data.feature_cache).
transform_vector.deterministic = lambda config: config.train_noise == 0  # type: ignore[attr-defined]


def collate_vectors(items: list[torch.Tensor]) -> torch.Tensor:
    """Stack ``B`` vectors ``[dim]`` into ``[B, dim]``."""
    return torch.stack(items)


def _class_latents(num_classes: int) -> torch.Tensor:
    # Shared by every view (seed fixed), so that the same label means the same thing.
    g = torch.Generator().manual_seed(12345)
    return torch.randn(num_classes, LATENT_DIM, generator=g)


def _view_map(config: VectorConfig) -> torch.Tensor:
    g = torch.Generator().manual_seed(1_000_003 + config.view_seed)
    return torch.randn(LATENT_DIM, config.dim, generator=g) / math.sqrt(LATENT_DIM)


def synthesize_vectors(
    n: int, generator: torch.Generator, labels: torch.Tensor | None = None,
    config: VectorConfig | None = None,
) -> list[torch.Tensor]:
    """``n`` vectors: this view's nonlinear map of a noisy class latent, plus noise."""
    config = config or VectorConfig()
    if labels is None:
        labels = torch.randint(0, config.num_classes, (n,), generator=generator)
    latent = _class_latents(config.num_classes)[labels % config.num_classes]
    latent = latent + config.noise * torch.randn(latent.shape, generator=generator)
    vectors = torch.tanh(latent @ _view_map(config))
    vectors = vectors + config.noise * 0.3 * torch.randn(vectors.shape, generator=generator)
    return list(vectors.unbind(0))


VECTOR = define_modality(
    "vector", VectorConfig, load=load_vector, transform=transform_vector,
    collate=collate_vectors, synthesize=synthesize_vectors, default_encoder="vector_mlp",
    description="fixed-size float vectors (.npy files, lists, tensors)",
)


@dataclass
class VectorMLPConfig:
    """Hyper-parameters of ``vector_mlp``.

    Args:
        in_dim: length of the input vectors (set from the modality's ``dim``).
        hidden: width of the hidden layers.
        depth: number of hidden layers.
        width: output width.
        dropout: dropout after each hidden layer.
    """

    in_dim: int = 32
    hidden: int = 128
    depth: int = 2
    width: int = 128
    dropout: float = 0.0


@encoder("vector_mlp", config=VectorMLPConfig, binds={"in_dim": "dim"})
class VectorMLP(nn.Module):
    """MLP over fixed-size vectors.

    Shapes:
        input: ``[B, in_dim]``; output: ``[B, width]``.
    """

    def __init__(self, config: VectorMLPConfig) -> None:
        super().__init__()
        self.config = config
        self.width = config.width
        layers: list[nn.Module] = []
        dim = config.in_dim
        for _ in range(config.depth):
            layers += [nn.Linear(dim, config.hidden), nn.GELU(), nn.Dropout(config.dropout)]
            dim = config.hidden
        layers.append(nn.Linear(dim, config.width))
        self.net = nn.Sequential(*layers)

    def forward(self, batch: torch.Tensor) -> torch.Tensor:
        """Embed ``[B, in_dim]`` vectors as ``[B, width]``."""
        if batch.shape[-1] != self.config.in_dim:
            raise ValueError(
                f"vector_mlp expects vectors of in_dim={self.config.in_dim}, got "
                f"{batch.shape[-1]} (in_dim follows the modality's dim)"
            )
        return self.net(batch.float())


anymodal_register_modalities, anymodal_register_encoders = plugin_hooks(
    modalities=[VECTOR], encoders=[VectorMLP])
