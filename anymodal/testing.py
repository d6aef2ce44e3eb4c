"""Contract checks for plugin authors: run them in your plugin's tests.

``check_modality(spec)`` and ``check_encoder(spec)`` raise ``AssertionError`` with a message
that says which part of the contract failed. anymodal's own suite runs ``check_encoder``
over every registered encoder.
"""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

import torch

from anymodal.errors import DataError
from anymodal.plugin_host.manager import (
    PluginInfo,
    create_encoder,
    get_modality,
    get_plugin_manager,
)
from anymodal.types import EncoderSpec, ModalitySpec

__all__ = [
    "check_data_error",
    "check_encoder",
    "check_modality",
    "check_prepared",
    "check_registered",
    "check_trains_and_reloads",
    "imported_modules",
    "require_executable",
    "save_tiny_hf_model",
    "synthetic_batch",
]


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


def check_trains_and_reloads(modalities: dict[str, Any], directory: str | Path,
                             steps: int = 3, n: int = 4, lr: float = 1e-3) -> Any:
    """Train a model of ``modalities`` a few steps, save it, reload it: same embeddings.

    - ``steps`` AdamW steps on synthetic batches change the trainable weights and leave
      frozen ones bit-identical;
    - ``save_pretrained`` then ``load_model`` give a model whose embeddings of a batch are
      bit-identical (``torch.equal``) to the trained one's.

    Args:
        modalities: the recipe's ``modalities`` section (at least two keys).
        directory: where the model folder is written.
        steps: optimiser steps.
        n: rows per synthetic batch.
        lr: learning rate.

    Returns:
        The reloaded model.
    """
    from anymodal.config import load_config
    from anymodal.model import MultiModalModel, load_model

    torch.manual_seed(0)
    model = MultiModalModel(load_config(None, {"modalities": modalities,
                                               "model": {"embed_dim": 16}}))
    _train_steps(model, steps, n, lr)
    model.eval()
    batch = {key: synthetic_batch(spec, n, seed=99) for key, spec in model.modalities.items()}
    model.save_pretrained(directory)
    again = load_model(directory).eval()
    with torch.no_grad():
        first, second = model.embed_batch(batch), again.embed_batch(batch)
    for key in first:
        assert torch.equal(first[key], second[key]), f"{key}: reloaded embeddings differ"
    return again


def _train_steps(model: Any, steps: int, n: int, lr: float) -> None:
    """AdamW steps on synthetic batches; asserts that trainable weights move, frozen don't."""
    frozen = {k: v.clone() for k, v in model.named_parameters() if not v.requires_grad}
    before = {k: v.clone() for k, v in model.named_parameters() if v.requires_grad}
    optimizer = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=lr)
    model.train()
    for step in range(steps):
        batch = {key: synthetic_batch(spec, n, seed=step)
                 for key, spec in model.modalities.items()}
        loss = model.compute_loss(batch)["loss"]
        assert torch.isfinite(loss), f"step {step}: non-finite loss {loss}"
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    moved = [k for k, v in model.named_parameters()
             if k in before and not torch.equal(v, before[k])]
    assert moved, "training changed no weight"
    for name, value in model.named_parameters():
        if name in frozen:
            assert torch.equal(value, frozen[name]), f"frozen weight {name} changed"


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


def check_registered(modality: str, distribution: str, encoders: Iterable[str]) -> PluginInfo:
    """Assert that ``modality`` and ``encoders`` were registered by the installed ``distribution``.

    Checks what a user's ``pip install`` gives: the plugin came through its entry point (not
    as a built-in), it provides at least ``encoders`` and its modality's default encoder,
    and it recorded no load failure.

    Args:
        modality: the modality key the plugin registers.
        distribution: the plugin's distribution name (``anymodal-audio``).
        encoders: encoder names the plugin must provide (others may exist).

    Returns:
        The plugin's :class:`PluginInfo`, for further checks.
    """
    manager = get_plugin_manager()
    failure = manager.failure_for(distribution)
    assert failure is None, f"{distribution} failed to load: {failure}"
    assert modality in manager.modalities, f"modality {modality!r} is not registered"
    info = manager.plugin_for("modalities", modality)
    assert info.distribution == distribution and not info.builtin, (
        f"modality {modality!r} comes from {info.distribution} (built-in: {info.builtin}), "
        f"expected the entry point of {distribution}")
    missing = set(encoders) - set(info.encoders)
    assert not missing, f"{distribution} does not register the encoders {sorted(missing)}"
    assert get_modality(modality).default_encoder in info.encoders, (
        f"the default encoder of {modality!r} is not one of {distribution}'s")
    return info


def imported_modules(code: str, modules: Iterable[str]) -> list[str]:
    """Which of ``modules`` a fresh interpreter has imported after running ``code``.

    For tests that keep an import light (listing plugins must not import open3d; the
    parser must not import torch): ``sys.modules`` of the test's own process says nothing,
    since the suite imported everything long before.

    Args:
        code: Python source run with ``python -c`` (it must succeed).
        modules: the module names to look for.
    """
    names = list(modules)
    probe = (f"{code}\nimport json, sys\n"
             f"print(json.dumps([m for m in {names!r} if m in sys.modules]))")
    done = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True,
                          timeout=300)
    assert done.returncode == 0, done.stderr
    found: list[str] = json.loads(done.stdout.strip().splitlines()[-1])
    return found


def check_data_error(load: Callable[[], Any], source: Any, *fragments: str) -> DataError:
    """Assert that ``load()`` raises a :class:`DataError` naming ``source`` and saying why.

    The contract of every loader: a bad file is reported with its path and the reason,
    never as a library's bare exception.

    Args:
        load: the call that must fail (``lambda: load_audio(path, config)``).
        source: what the message must name (a path, or the text of the source).
        fragments: further text the message must contain (the reason).

    Returns:
        The error, for further checks (``err.source``).
    """
    try:
        load()
    except DataError as err:
        message = str(err)
        assert str(source) in message, f"the error does not name {source}: {message}"
        for fragment in fragments:
            assert fragment in message, f"the error does not say {fragment!r}: {message}"
        return err
    raise AssertionError(f"loading {source} raised no DataError")


def require_executable(name: str, purpose: str) -> str:
    """The path of executable ``name``; the calling test is skipped when it is missing.

    Args:
        name: the program (``"ffmpeg"``).
        purpose: what the tests need it for, said in the skip reason.
    """
    import shutil

    import pytest

    found = shutil.which(name)
    if found is None:
        pytest.skip(f"the {name} executable is not installed: {purpose}")
    return found


def save_tiny_hf_model(folder: str | Path, model_class: Any, config: Any,
                       processor: Any = None, seed: int = 0) -> Path:
    """Save a randomly initialised Hugging Face model (and its processor) to ``folder``.

    Tests of a ``*_hf`` encoder build their tiny model offline this way and load it from
    the folder, as a user's model id would be, without the network.

    Args:
        folder: where to save (created if missing).
        model_class: the ``transformers`` model class (``BertModel``).
        config: its config (``BertConfig(hidden_size=32, ...)``).
        processor: a tokenizer, feature extractor or image processor saved beside it.
        seed: the seed of the random weights (the same folder on every run).

    Returns:
        ``folder`` as a :class:`~pathlib.Path`.
    """
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    if processor is not None:
        processor.save_pretrained(folder)
    torch.manual_seed(seed)
    model_class(config).save_pretrained(folder)
    return folder


def check_prepared(spec: ModalitySpec, raw: Any, seeds: int = 3) -> Any:
    """Assert that ``transform`` gives the same item from ``prepare(raw)`` as from ``raw``.

    The contract of a modality's ``prepare`` (the deterministic prefix the sample cache
    stores): training and evaluation items are equal bit for bit, under the same random
    state, whether the transform starts from the loaded item or from its prepared form.

    Args:
        spec: the modality (it must declare ``prepare``).
        raw: a loaded item (``spec.load(source)``).
        seeds: how many random states to compare, in each mode.

    Returns:
        The prepared item, for further checks.
    """
    assert spec.prepare is not None, f"modality {spec.name!r} declares no prepare"
    prepared = spec.prepare(raw)
    for train in (True, False):
        for seed in range(seeds):
            torch.manual_seed(seed)
            direct = spec.transform(raw, train)
            torch.manual_seed(seed)
            _assert_same(direct, spec.transform(prepared, train),
                         f"{spec.name}: the item from prepare differs (train={train}, seed={seed})")
    return prepared
