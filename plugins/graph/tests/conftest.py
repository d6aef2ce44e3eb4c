"""Fixtures: a small featured graph, and real files written with torch, PyG, json and csv."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import pytest
import torch
from torch_geometric.data import Data, InMemoryDataset


@pytest.fixture(scope="session")
def graph() -> Data:
    """A path 0-1-2-3 plus the chord 0-2, with 3 features per node."""
    x = torch.arange(12, dtype=torch.float32).reshape(4, 3)
    edge_index = torch.tensor([[0, 1, 2, 0], [1, 2, 3, 2]])
    return Data(x=x, edge_index=edge_index, y=torch.tensor([1]))


@pytest.fixture(scope="session")
def files(tmp_path_factory: pytest.TempPathFactory, graph: Data) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("graph")
    out = {name: root / name for name in
           ("data.pt", "dict.pt", "dataset.pt", "graph.json", "count.json", "edges.csv")}
    torch.save(graph, out["data.pt"])
    torch.save(graph.to_dict(), out["dict.pt"])
    InMemoryDataset.save([graph], str(out["dataset.pt"]))
    edges = graph.edge_index.T.tolist()
    out["graph.json"].write_text(json.dumps({"nodes": graph.x.tolist(), "edges": edges}))
    out["count.json"].write_text(json.dumps({"nodes": 4, "edges": edges}))
    with open(out["edges.csv"], "w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(["source", "target", "weight"])
        writer.writerows([[u, v, 0.5] for u, v in edges])
    return out
