"""Labelled synthetic graphs: five families told apart by their structure.

Class ``k`` is ``FAMILIES[k]``: a cycle, a 2-D grid, a random tree, a star, or a
two-or-three-block stochastic block model. Sizes vary in ``[min_nodes, max_nodes]`` and
node ids are shuffled, so only the structure tells the class. Items carry structural
features (see :class:`~anymodal_graph.config.GraphConfig`) and go through the eval
transform like a loaded file.
"""

from __future__ import annotations

from typing import Any

import torch

from anymodal.authoring import synthetic_labels
from anymodal_graph.config import GraphConfig
from anymodal_graph.io import RawGraph
from anymodal_graph.transforms import transform_graph

__all__ = ["FAMILIES", "make_family", "synthesize_graphs"]

FAMILIES = ("cycle", "grid", "tree", "star", "sbm")


def _randint(low: int, high: int, g: torch.Generator) -> int:
    """An int in ``[low, high]``."""
    return int(torch.randint(low, high + 1, (1,), generator=g))


def _cycle(n: int, g: torch.Generator) -> tuple[list[tuple[int, int]], int]:
    return [(i, (i + 1) % n) for i in range(n)], n


def _grid(n: int, g: torch.Generator) -> tuple[list[tuple[int, int]], int]:
    rows = _randint(2, max(2, int(n**0.5)), g)
    cols = max(2, n // rows)
    edges = []
    for r in range(rows):
        for c in range(cols):
            node = r * cols + c
            if c + 1 < cols:
                edges.append((node, node + 1))
            if r + 1 < rows:
                edges.append((node, node + cols))
    return edges, rows * cols


def _tree(n: int, g: torch.Generator) -> tuple[list[tuple[int, int]], int]:
    # each node hangs under one of the few most recent possible parents: a bushy, deep tree
    # rather than a star (which is its own class)
    edges = []
    for i in range(1, n):
        parent = _randint(max(0, (i - 1) // 2 - 1), (i - 1) // 2, g)
        edges.append((parent, i))
    return edges, n


def _star(n: int, g: torch.Generator) -> tuple[list[tuple[int, int]], int]:
    return [(0, i) for i in range(1, n)], n


def _sbm(n: int, g: torch.Generator, p_in: float = 0.6, p_out: float = 0.05
         ) -> tuple[list[tuple[int, int]], int]:
    blocks = _randint(2, 3, g)
    block = torch.arange(n) % blocks
    same = block.unsqueeze(0) == block.unsqueeze(1)
    prob = torch.where(same, p_in, p_out)
    upper = torch.triu(torch.rand(n, n, generator=g) < prob, diagonal=1)
    return [tuple(e) for e in upper.nonzero().tolist()], n


_BUILDERS = (_cycle, _grid, _tree, _star, _sbm)


def make_family(label: int, g: torch.Generator, config: GraphConfig) -> RawGraph:
    """A raw graph of family ``label % 5`` with shuffled node ids."""
    label = int(label) % len(FAMILIES)
    n = _randint(config.min_nodes, config.max_nodes, g)
    edges, n = _BUILDERS[label](n, g)
    perm = torch.randperm(n, generator=g)
    edge_index = (perm[torch.tensor(edges, dtype=torch.long).T] if edges
                  else torch.zeros(2, 0, dtype=torch.long))
    return RawGraph(None, edge_index, n, f"<synthetic {FAMILIES[label]}>")


def synthesize_graphs(n: int, generator: torch.Generator, labels: torch.Tensor | None = None,
                      config: GraphConfig | None = None) -> list[Any]:
    """``n`` eval-transformed ``Data`` items; item ``i`` is family ``labels[i] % 5``."""
    config = config or GraphConfig()
    return [transform_graph(make_family(label, generator, config), False, config)
            for label in synthetic_labels(n, generator, labels, len(FAMILIES))]
