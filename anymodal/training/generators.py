"""The random generators a model's modules hold, saved and restored with each checkpoint.

``accelerator.save_state`` saves the global RNGs (Python, NumPy, torch, CUDA) but not a
``torch.Generator`` that a module keeps for itself, such as the one Symile's
``negatives: n`` draws its shuffled tuples from. Without it a resumed run draws other
negatives and its weights drift from an uninterrupted run's (measured: max abs diff 5e-3).
:class:`ModuleGenerators` finds every such generator and is registered with
``accelerator.register_for_checkpointing``, so it travels in the checkpoint like the rest.
"""

from __future__ import annotations

from collections.abc import Iterator

import torch
from torch import nn

__all__ = ["ModuleGenerators"]


class ModuleGenerators:
    """Checkpointable states of every ``torch.Generator`` attribute of a module tree.

    Args:
        module: the (unwrapped) model.
    """

    def __init__(self, module: nn.Module) -> None:
        self.module = module

    def generators(self) -> Iterator[tuple[str, torch.Generator]]:
        """``(dotted name, generator)`` for each generator, in a fixed order."""
        for prefix, sub in self.module.named_modules():
            for attr, value in sorted(vars(sub).items()):
                if isinstance(value, torch.Generator):
                    yield f"{prefix}.{attr}" if prefix else attr, value

    def state_dict(self) -> dict[str, torch.Tensor]:
        """Each generator's state (a byte tensor), by name."""
        return {name: g.get_state() for name, g in self.generators()}

    def load_state_dict(self, state: dict[str, torch.Tensor]) -> None:
        """Restore the states saved by :meth:`state_dict`.

        Args:
            state: name -> generator state; names absent here are left as they are.
        """
        for name, generator in self.generators():
            if name in state:
                generator.set_state(state[name].to(torch.uint8).cpu())
