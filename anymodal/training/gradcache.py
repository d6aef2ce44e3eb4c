"""GradCache: the exact gradient of a large contrastive batch in the memory of a small one.

A contrastive loss couples every row of a batch (each row's negatives are the others), so
gradient accumulation over micro-batches is *not* the gradient of the large batch. GradCache
(Gao et al., "Scaling Deep Contrastive Learning Batch Size under Memory Limited Setup",
2021) gets it exactly, in three stages:

1. **embed without graph**: every micro-batch of rows goes through the encoders under
   ``torch.no_grad``; the embeddings are kept (``[N, D]`` per modality, no activations);
2. **loss and its gradient with respect to the embeddings**: the objective runs once on the
   whole batch of cached embeddings (leaf tensors); the caller back-propagates the loss,
   which fills ``embedding.grad`` and the gradients of the loss's own parameters (logit
   scale, an objective's bias);
3. **re-embed with graph, one micro-batch at a time**: each micro-batch is embedded again
   and its slice of the embedding gradient is back-propagated into the encoders; its graph
   is freed before the next one.

Peak memory is one micro-batch's activations plus the embeddings (and the loss's own
``N x N`` logits), whatever ``N`` is.

Exactness rests on the two embedding passes being the same function:

* randomness inside the model (dropout, on-device augmentation) is replayed: the torch CPU
  generator and the model device's generator are saved before each micro-batch of stage 1
  and restored before the same micro-batch of stage 3 (as ``torch.utils.checkpoint`` does);
  afterwards the generators are where stage 1 left them;
* module buffers (BatchNorm running statistics) are updated by stage 1 only: stage 3 puts
  them back as stage 1 left them;
* augmentation done by the data pipeline happens before the batch reaches the model, so
  both passes see the same tensors.

An encoder whose output for a row depends on the *other* rows of its batch (BatchNorm in
training mode) sees micro-batches instead of the batch: GradCache is then exact for that
micro-batch computation, not for one forward pass over the whole batch.

Across processes the objective gathers the cached embeddings with gradient
(:mod:`anymodal.objectives.gather`), so stage 2 yields, on each process, ``W`` times the
one-process gradient of its own rows. The passes run on the unwrapped model (outside
DistributedDataParallel's hooks, which would reduce once per micro-batch), and the
gradients are averaged over processes once at the end (:func:`average_gradients`): the
result is the one-process gradient of the global batch.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

import torch
import torch.distributed as dist
from torch import Tensor, nn

from anymodal.data.guard import NONFINITE_KEY, finite_rows, nonfinite_rows, running_stats
from anymodal.errors import ConfigError
from anymodal.objectives.row_state import batch_rows
from anymodal.training.microbatches import presence_masks, split_batch
from anymodal.types import Batch

__all__ = [
    "GradCache",
    "average_gradients",
    "check_accelerator",
    "gradcache_step",
    "split_batch",
]


class CachedModel(Protocol):
    """What GradCache needs of a model (``MultiModalModel`` has it)."""

    encoders: nn.ModuleDict
    objective: Callable[..., dict[str, Tensor]]

    def embed_batch(self, batch: Batch) -> dict[str, Tensor]: ...

    def logit_scale(self) -> Tensor: ...

    def parameters(self, recurse: bool = True) -> Iterator[nn.Parameter]: ...

    def buffers(self, recurse: bool = True) -> Iterator[Tensor]: ...


# -- random number generators -----------------------------------------------------------------


@dataclass(frozen=True)
class _RngState:
    """The torch CPU generator's state and, for an accelerator device, that device's."""

    cpu: Tensor
    device: Tensor | None


def _device_module(device: torch.device) -> Any | None:
    if device.type in ("cpu", "meta"):
        return None
    module = getattr(torch, device.type, None)
    return module if module is not None and hasattr(module, "get_rng_state") else None


def _capture_rng(device: torch.device) -> _RngState:
    module = _device_module(device)
    index = device.index if device.index is not None else 0
    return _RngState(torch.get_rng_state(),
                     module.get_rng_state(index) if module is not None else None)


def _restore_rng(state: _RngState, device: torch.device) -> None:
    torch.set_rng_state(state.cpu)
    module = _device_module(device)
    if module is not None and state.device is not None:
        module.set_rng_state(state.device, device.index if device.index is not None else 0)


def _forked_rng(device: torch.device) -> contextlib.AbstractContextManager[Any]:
    """Generators restored on exit (the CPU one and the model device's)."""
    if _device_module(device) is None:
        return torch.random.fork_rng(devices=[])
    return torch.random.fork_rng(devices=[device.index or 0], device_type=device.type)


# -- gradients across processes ----------------------------------------------------------------


def _distributed() -> bool:
    return dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1


def average_gradients(parameters: Sequence[nn.Parameter]) -> None:
    """Average ``.grad`` over processes, as DistributedDataParallel would.

    A parameter that has a gradient on some process but not on this one counts as zero
    here; one that has none anywhere keeps ``None`` (as DDP leaves a globally unused
    parameter). Two collectives: the presence flags, then one flat buffer per dtype.
    No-op in one process. Every process must pass the same parameters in the same order.
    """
    if not _distributed():
        return
    params = [p for p in parameters if p.requires_grad]
    if not params:
        return
    device = params[0].device
    flags = torch.tensor([p.grad is not None for p in params], dtype=torch.int32,
                         device=device)
    dist.all_reduce(flags, op=dist.ReduceOp.SUM)
    used = [p for p, flag in zip(params, flags.tolist()) if flag]
    for p in used:
        if p.grad is None:
            p.grad = torch.zeros_like(p)
        elif p.grad.is_sparse:
            raise ConfigError("train.micro_batch does not support sparse gradients")
    world = dist.get_world_size()
    grads = [p.grad for p in used if p.grad is not None]  # every used one has one by now
    for dtype in sorted({g.dtype for g in grads}, key=str):
        group = [g for g in grads if g.dtype == dtype]
        flat = torch.cat([g.reshape(-1) for g in group])
        dist.all_reduce(flat, op=dist.ReduceOp.SUM)
        flat /= world
        offset = 0
        for g in group:
            count = g.numel()
            g.copy_(flat[offset:offset + count].view_as(g))
            offset += count


# -- the three stages ----------------------------------------------------------------------------


class GradCache:
    """One GradCache step, in the shape of ``forward`` / ``backward``.

    Use::

        cache = GradCache(model, micro_batch=16)
        out = cache.forward(batch)        # stages 1-2: out["loss"] over cached embeddings
        out["loss"].backward()            # or accelerator.backward(...): fills their grads
        cache.backward()                  # stage 3, then the average over processes

    Args:
        model: the unwrapped model (see :class:`CachedModel`), in the mode to train in.
        micro_batch: rows embedded at once.
        autocast: a factory of the mixed-precision context (``accelerator.autocast``),
            entered around every embedding pass; ``None`` for none.
    """

    def __init__(self, model: CachedModel, micro_batch: int,
                 autocast: Callable[[], contextlib.AbstractContextManager[Any]] | None = None
                 ) -> None:
        if micro_batch < 1:
            raise ConfigError(f"train.micro_batch must be at least 1, got {micro_batch}")
        self.model = model
        self.micro_batch = int(micro_batch)
        self.autocast = autocast or contextlib.nullcontext
        self._pieces: list[Batch] = []
        self._states: list[_RngState] = []
        self._cached: dict[str, Tensor] = {}
        self._buffers: list[Tensor] = []

    @classmethod
    def for_accelerator(cls, model: CachedModel, micro_batch: int, accelerator: Any
                        ) -> GradCache:
        """The training loop's GradCache.

        ``accelerator.autocast`` goes around the passes, and an accelerator that shards
        parameters is refused with a clear error (see :func:`check_accelerator`).
        """
        check_accelerator(accelerator)
        return cls(model, micro_batch, accelerator.autocast)

    @property
    def device(self) -> torch.device:
        """The device of the model's parameters."""
        return next(iter(self.model.parameters())).device

    def forward(self, batch: Batch) -> dict[str, Tensor]:
        """Stages 1 and 2: embed every micro-batch without graph, then the loss.

        The objective is applied to the cached embeddings (leaf tensors that require grad).

        Returns:
            the objective's output; ``out["loss"]`` depends on the cached embeddings and on
            the loss's own parameters only. Back-propagate it, then call :meth:`backward`.
        """
        device = self.device
        self._pieces = split_batch(batch, list(self.model.encoders), self.micro_batch)
        self._states = []
        saved = running_stats(self.model)  # type: ignore[arg-type]
        parts: list[dict[str, Tensor]] = []
        with torch.no_grad():
            for piece in self._pieces:
                self._states.append(_capture_rng(device))
                with self.autocast():
                    parts.append(self.model.embed_batch(piece))
        # Stage 3 puts the buffers (BatchNorm statistics) back as stage 1 left them.
        self._buffers = [b.detach().clone() for b in self.model.buffers()]
        self._cached = {key: torch.cat([p[key] for p in parts]).requires_grad_()
                        for key in parts[0]}
        parts.clear()  # the loss below should find one copy of the embeddings, not two
        flags = nonfinite_rows(self._cached, list(self.model.encoders))
        kept = None if flags is None else finite_rows(batch, flags, self.model.encoders, saved)
        if kept is not None and flags is not None:  # rows that overflow an encoder
            return {**self.forward(kept), NONFINITE_KEY: flags}  # (data.guard): without them
        present = {key: mask.to(device) for key, mask in
                   presence_masks(batch, list(self._cached))[1].items()}
        # The loss runs once per step (stage 3 only re-embeds): per-row states such as
        # global_contrastive's are read and updated here, once, with the batch's row indices.
        with self.autocast(), batch_rows(self.model.objective, batch):
            out = self.model.objective(self._cached, self.model.logit_scale(),
                                       present or None)
        return out if flags is None else {**out, NONFINITE_KEY: flags}

    def backward(self, sync: bool = True) -> None:
        """Stage 3: re-embed each micro-batch with graph and back-propagate its slice.

        Each micro-batch sees the randomness it saw in stage 1. The gradients are then
        averaged over processes when ``sync`` (pass ``accelerator.sync_gradients`` under
        gradient accumulation).

        Raises:
            RuntimeError: when called before the loss of :meth:`forward` was back-propagated.
        """
        if not self._cached:
            raise RuntimeError("GradCache.backward() needs GradCache.forward(batch) first")
        if all(x.grad is None for x in self._cached.values()):
            raise RuntimeError("GradCache.backward(): back-propagate forward()'s loss first "
                               "(the cached embeddings have no gradient)")
        device, start = self.device, 0
        with _forked_rng(device):
            for piece, state in zip(self._pieces, self._states):
                _restore_rng(state, device)
                with self.autocast():
                    embedded = self.model.embed_batch(piece)
                stop = start + next(iter(embedded.values())).shape[0]
                self._backward_slice(embedded, start, stop)
                start = stop
        with torch.no_grad():
            for buffer, saved in zip(self.model.buffers(), self._buffers):
                buffer.copy_(saved)
        self._pieces, self._states, self._cached, self._buffers = [], [], {}, []
        if sync:
            average_gradients(list(self.model.parameters()))

    def _backward_slice(self, embedded: Mapping[str, Tensor], start: int, stop: int) -> None:
        tensors, grads = [], []
        for key, value in embedded.items():
            grad = self._cached[key].grad
            if grad is None or not value.requires_grad:
                continue
            tensors.append(value)
            grads.append(grad[start:stop].to(value.dtype))
        if tensors:
            torch.autograd.backward(tensors, grads)


def gradcache_step(model: CachedModel, batch: Batch, micro_batch: int,
                   backward: Callable[[Tensor], Any] = Tensor.backward,
                   autocast: Callable[[], contextlib.AbstractContextManager[Any]] | None = None,
                   sync: bool = True) -> dict[str, Tensor]:
    """Loss and backward of ``batch`` through GradCache, in one call (see :class:`GradCache`).

    Args:
        model: the unwrapped model.
        batch: a collated batch on the model's device.
        micro_batch: rows embedded at once.
        backward: back-propagates the loss (``accelerator.backward``, or a guard that zeroes
            a non-finite loss first); it must be called on every process.
        autocast: the mixed-precision context factory (``accelerator.autocast``).
        sync: average the gradients over processes at the end.

    Returns:
        the objective's output (``"loss"`` and its named parts).
    """
    cache = GradCache(model, micro_batch, autocast)
    out = cache.forward(batch)
    backward(out["loss"])
    cache.backward(sync)
    return out


def check_accelerator(accelerator: Any) -> None:
    """Refuse accelerators whose parameters are sharded (FSDP, DeepSpeed, Megatron...).

    GradCache averages gradients itself, which suits one process and DDP (CPU or GPU).

    Raises:
        ConfigError: naming the distributed type.
    """
    kind = str(getattr(accelerator, "distributed_type", "NO")).rsplit(".", 1)[-1]
    if kind in ("FSDP", "DEEPSPEED", "MEGATRON_LM", "XLA", "TP"):
        raise ConfigError(
            f"train.micro_batch (GradCache) is not supported with distributed type {kind}; "
            "use DDP (multi_gpu / multi_cpu) or one process, or unset train.micro_batch")
