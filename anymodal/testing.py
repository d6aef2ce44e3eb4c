"""Contract checks for plugin authors: run them in your plugin's tests.

``check_modality(spec)`` and ``check_encoder(spec)`` raise ``AssertionError`` with a message
that says which part of the contract failed. anymodal's own suite runs ``check_encoder``
over every registered encoder.
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path
from typing import Any

import torch

from anymodal.errors import DataError
from anymodal.plugin_host.manager import create_encoder, get_modality
from anymodal.types import EncoderSpec, ModalitySpec

__all__ = ["check_encoder", "check_modality", "synthetic_batch"]


def synthetic_batch(modality: ModalitySpec, n: int, seed: int = 0) -> Any:
    """A collated batch of ``n`` synthetic items of ``modality``."""
    items = modality.synthesize(n, torch.Generator().manual_seed(seed))
    return modality.collate(items)


def check_modality(spec: ModalitySpec, bad_sources: Iterable[Any] = (), n: int = 4) -> None:
    """Check a modality against the contract of :class:`anymodal.ModalitySpec`.

    - ``synthesize`` gives ``n`` items, the same ones for the same seed, and honours labels;
    - ``collate`` accepts those items, and a single item;
    - each of ``bad_sources`` makes ``load`` raise :class:`anymodal.DataError` whose message
      names the source.
    """
    assert isinstance(spec, ModalitySpec), f"{spec!r} is not a ModalitySpec"
    items = spec.synthesize(n, torch.Generator().manual_seed(0))
    assert len(items) == n, f"{spec.name}: synthesize({n}) gave {len(items)} items"
    again = spec.synthesize(n, torch.Generator().manual_seed(0))
    for a, b in zip(items, again):
        _assert_same(a, b, f"{spec.name}: synthesize is not deterministic under a seed")
    labels = torch.arange(n) % max(spec.num_classes, 1)
    labelled = spec.synthesize(n, torch.Generator().manual_seed(1), labels)
    assert len(labelled) == n, f"{spec.name}: synthesize ignored n when labels were given"
    spec.collate(items)
    spec.collate(items[:1])
    for source in bad_sources:
        try:
            spec.load(source)
        except DataError as exc:
            # A path must be named; other sources (bytes, arrays) need only a DataError.
            shown = str(source)
            assert not isinstance(source, (str, Path)) or shown in str(exc), (
                f"{spec.name}: DataError for {source!r} does not name it: {exc}"
            )
        else:
            raise AssertionError(f"{spec.name}: load({source!r}) did not raise DataError")


def check_encoder(spec: EncoderSpec, params: dict[str, Any] | None = None,
                  modality_params: dict[str, Any] | None = None, n: int = 3,
                  atol: float = 1e-4) -> None:
    """Check an encoder against the contract of :class:`anymodal.EncoderSpec`.

    - it builds from its config dataclass and has an int ``width``;
    - ``forward(collated synthetic batch)`` is ``[n, width]``, finite;
    - a backward pass reaches its trainable parameters, with finite gradients;
    - in eval mode, the same seed builds the same weights and gives the same output, and a
      row's output does not depend on the other rows of the batch (padding, batch norm).
    """
    params = params or {}
    modality = get_modality(spec.modality, **(modality_params or {}))
    batch = synthetic_batch(modality, n)
    torch.manual_seed(0)
    encoder = create_encoder(spec.name, modality, **params)
    assert isinstance(encoder.width, int) and encoder.width > 0, f"{spec.name}: bad width"
    encoder.train()
    out = encoder(batch)
    assert isinstance(out, torch.Tensor), f"{spec.name}: forward returned {type(out).__name__}"
    assert out.shape == (n, encoder.width), (
        f"{spec.name}: output shape {tuple(out.shape)}, expected {(n, encoder.width)}"
    )
    assert torch.isfinite(out).all(), f"{spec.name}: non-finite output"
    trainable = [p for p in encoder.parameters() if p.requires_grad]
    if trainable:
        out.float().square().mean().backward()
        reached = [p for p in trainable if p.grad is not None]
        assert reached, f"{spec.name}: backward reached none of its trainable parameters"
        for p in reached:
            assert torch.isfinite(p.grad).all(), f"{spec.name}: non-finite gradient"

    # Two fresh builds under one seed (the trained one's batch-norm statistics moved).
    torch.manual_seed(0)
    first_model = create_encoder(spec.name, modality, **params).eval()
    torch.manual_seed(0)
    twin = create_encoder(spec.name, modality, **params).eval()
    with torch.no_grad():
        first = first_model(batch)
        torch.testing.assert_close(first, twin(batch), atol=atol, rtol=1e-4,
                                   msg=f"{spec.name}: not deterministic under a seed in eval")
        single = modality.collate(modality.synthesize(n, torch.Generator().manual_seed(0))[:1])
        torch.testing.assert_close(
            first_model(single)[0], first[0], atol=atol, rtol=1e-3,
            msg=f"{spec.name}: row 0's output changes with the rest of the batch in eval mode",
        )


def _assert_same(a: Any, b: Any, msg: str) -> None:
    if torch.is_tensor(a):
        assert torch.equal(a, b), msg
    elif isinstance(a, dict):
        assert a.keys() == b.keys(), msg
        for key in a:
            _assert_same(a[key], b[key], msg)
    elif isinstance(a, (list, tuple)):
        assert len(a) == len(b), msg
        for x, y in zip(a, b):
            _assert_same(x, y, msg)
    elif hasattr(a, "to_dict"):  # torch_geometric Data
        _assert_same(a.to_dict(), b.to_dict(), msg)
    else:
        assert a == b, msg
