"""Reading graphs into a :class:`RawGraph`: PyG ``.pt`` files, JSON, edge-list CSV.

Formats:

- ``.pt`` / ``.pth``, read with ``torch.load(weights_only=True)``: a pickled
  ``torch_geometric.data.Data`` (``torch.save(data, path)``), a plain dict
  (``torch.save(data.to_dict(), path)``, the most portable form), or a one-graph file of
  ``InMemoryDataset.save([data], path)``. PyG 2.8 allow-lists ``Data`` for weights-only
  loading, but a pickled ``Data`` also names its storage classes (``DataEdgeAttr``,
  ``DataTensorAttr``, ``GlobalStorage``); these are allowed here for this one call only,
  with ``torch.serialization.safe_globals``, never globally and never any other class.
- ``.json``: ``{"nodes": [[f, ...], ...] | <count>, "edges": [[u, v], ...]}``; a node may
  be a feature list, a single number, or an empty list (no features).
- ``.csv`` / ``.edgelist`` / ``.edges`` / ``.txt``: one edge ``u,v`` (or ``u v``) per line,
  0-based integer ids; an optional header line, ``#`` comments, and extra columns
  (weights) are ignored. The graph has ``max id + 1`` nodes and no node features.

Every bad input raises :class:`anymodal.DataError` naming the file: missing, corrupt,
no nodes, an edge index out of range, NaN features, features wider than ``feature_dim``.
"""

from __future__ import annotations

import json
import pickle
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from anymodal import DataError
from anymodal_graph.config import GraphConfig

__all__ = ["CSV_SUFFIXES", "RawGraph", "load_graph", "validate_graph"]

CSV_SUFFIXES = (".csv", ".edgelist", ".edges", ".txt")
_PT_SUFFIXES = (".pt", ".pth")


@dataclass
class RawGraph:
    """A loaded graph, before features are fixed to ``feature_dim``.

    Args:
        x: node features ``[num_nodes, f]`` float32 with ``f <= feature_dim``, or ``None``.
        edge_index: ``[2, num_edges]`` int64, every entry in ``[0, num_nodes)``.
        num_nodes: at least 1.
        source: the file or description it came from, for error messages.
    """

    x: torch.Tensor | None
    edge_index: torch.Tensor
    num_nodes: int
    source: str


def load_graph(source: Any, config: GraphConfig) -> RawGraph:
    """Read ``source``: a path, a PyG ``Data``, a dict like ``Data.to_dict()``, a RawGraph.

    Raises:
        DataError: the source cannot be read or is not a valid graph.
    """
    if isinstance(source, RawGraph):
        return validate_graph(source.x, source.edge_index, source.num_nodes, source.source,
                              config)
    if isinstance(source, dict):
        return _from_mapping(source, "<dict>", config)
    if _is_pyg_graph(source):
        return _from_data(source, f"<{type(source).__name__}>", config)
    if not isinstance(source, (str, Path)):
        raise DataError(f"<{type(source).__name__}>", "cannot be read as a graph: pass a "
                        "file path, a torch_geometric Data or a dict with 'edge_index'")
    path = Path(source)
    suffix = path.suffix.lower()
    if suffix not in (*_PT_SUFFIXES, ".json", *CSV_SUFFIXES):
        raise DataError(path, f"unknown graph extension {suffix!r}; supported: "
                              + " ".join((*_PT_SUFFIXES, ".json", *CSV_SUFFIXES)))
    if not path.is_file():
        raise DataError(path, "file not found")
    if suffix in _PT_SUFFIXES:
        return _load_pt(path, config)
    if suffix == ".json":
        return _load_json(path, config)
    return _load_csv(path, config)


def _is_pyg_graph(obj: Any) -> bool:
    """A PyG ``Data``/``HeteroData``/``Batch``, told without importing torch_geometric."""
    return type(obj).__module__.startswith("torch_geometric.data") and hasattr(obj, "to_dict")


def _pyg_storage_classes() -> list[type]:
    """The classes a pickled ``Data`` refers to besides ``Data`` itself."""
    import torch_geometric.data.data as pyg_data  # registers Data as a safe global
    import torch_geometric.data.storage as pyg_storage

    names = [(pyg_data, "DataEdgeAttr"), (pyg_data, "DataTensorAttr"),
             (pyg_storage, "GlobalStorage")]
    return [getattr(module, name) for module, name in names if hasattr(module, name)]


def _load_pt(path: Path, config: GraphConfig) -> RawGraph:
    try:
        with torch.serialization.safe_globals(_pyg_storage_classes()):
            obj = torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as exc:
        raise DataError(path, _unpickling_problem(str(exc))) from None
    except Exception as exc:  # torch raises RuntimeError/EOFError/... on corrupt files
        raise DataError(path, f"corrupt or not a torch file ({type(exc).__name__}: "
                              f"{str(exc).splitlines()[0] if str(exc) else ''})") from None
    name = str(path)
    if _is_pyg_graph(obj):
        return _from_data(obj, name, config)
    if isinstance(obj, dict):
        return _from_mapping(obj, name, config)
    if isinstance(obj, (tuple, list)) and len(obj) >= 2 and isinstance(obj[0], dict) \
            and (obj[1] is None or isinstance(obj[1], dict)):
        return _from_dataset_file(obj[0], obj[1], name, config)
    raise DataError(path, f"holds a {type(obj).__name__}; expected a PyG Data, a dict with "
                          "'edge_index' (Data.to_dict()) or InMemoryDataset.save output")


def _unpickling_problem(message: str) -> str:
    """A one-line reason from torch's long weights-only error message."""
    detail = message.split("WeightsUnpickler error:", 1)[-1]
    lines = [line.strip() for line in detail.splitlines() if line.strip()]
    first = lines[0].split(" was not an allowed global")[0] if lines else message[:80]
    if "Unsupported global" in first:
        return (f"cannot be loaded with torch.load(weights_only=True): it refers to "
                f"{first.replace('Unsupported global: GLOBAL ', '')}; only tensors, containers "
                "and PyG Data are allowed (save data.to_dict() instead)")
    return f"corrupt or not a torch file ({first})"


def _from_dataset_file(data: dict, slices: dict | None, name: str,
                       config: GraphConfig) -> RawGraph:
    """A file of ``InMemoryDataset.save``: the collated dict and its slices.

    PyG stores ``None`` slices when the dataset holds a single graph.
    """
    if slices is None:
        return _from_mapping(data, name, config)
    key = "edge_index" if "edge_index" in slices else next(iter(slices), None)
    graphs = len(slices[key]) - 1 if key is not None else 0
    if graphs != 1:
        raise DataError(name, f"holds {graphs} graphs (an InMemoryDataset file); an item is "
                              "one graph: save one graph per file")
    return _from_mapping(data, name, config)


def _from_data(data: Any, name: str, config: GraphConfig) -> RawGraph:
    if type(data).__name__ == "HeteroData":
        raise DataError(name, "heterogeneous graphs (HeteroData) are not supported")
    if not hasattr(data, "edge_index"):
        raise DataError(name, "holds a graph without 'edge_index'")
    return _from_mapping(data.to_dict(), name, config)


def _from_mapping(mapping: dict, name: str, config: GraphConfig) -> RawGraph:
    if "edge_index" not in mapping:
        raise DataError(name, f"has no 'edge_index' (keys: {sorted(map(str, mapping))})")
    return validate_graph(mapping.get("x"), mapping["edge_index"], mapping.get("num_nodes"),
                          name, config)


def _load_json(path: Path, config: GraphConfig) -> RawGraph:
    try:
        doc = json.loads(path.read_text(encoding="utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise DataError(path, f"not valid JSON ({exc})") from None
    if not isinstance(doc, dict) or "nodes" not in doc or "edges" not in doc:
        raise DataError(path, 'expected a JSON object {"nodes": [...], "edges": [[u, v], ...]}')
    nodes, x = doc["nodes"], None
    if isinstance(nodes, bool) or not isinstance(nodes, (int, list)):
        raise DataError(path, '"nodes" must be a list of feature lists or a node count')
    if isinstance(nodes, int):
        num_nodes = nodes
    else:
        num_nodes = len(nodes)
        rows = [[v] if isinstance(v, (int, float)) else v for v in nodes]
        if any(not isinstance(r, list) for r in rows):
            raise DataError(path, "each node must be a list of numbers or a number")
        if len({len(r) for r in rows}) > 1:
            raise DataError(path, "nodes have feature lists of different lengths")
        if rows and rows[0]:
            x = _to_tensor(rows, path, "node features", torch.float32)
    edges = doc["edges"]
    if not isinstance(edges, list) or any(not isinstance(e, list) or len(e) != 2 for e in edges):
        raise DataError(path, '"edges" must be a list of [u, v] pairs')
    edge_index = _to_tensor(edges, path, "edges", torch.long).reshape(-1, 2).T
    return validate_graph(x, edge_index, num_nodes, str(path), config)


def _load_csv(path: Path, config: GraphConfig) -> RawGraph:
    try:
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError:
        raise DataError(path, "corrupt edge list (not UTF-8 text)") from None
    pairs: list[tuple[int, int]] = []
    seen_line = False
    for number, line in enumerate(text.splitlines(), start=1):
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        fields = re.split(r"[,\s;]+", line)
        try:
            pairs.append((int(fields[0]), int(fields[1])))
        except (ValueError, IndexError):
            if seen_line:  # only the first line may be a header
                raise DataError(path, f"line {number}: {line[:60]!r} is not an edge 'u,v' of "
                                      "integer node ids") from None
        seen_line = True
    if not pairs:
        raise DataError(path, "graph has no nodes (the edge list has no edges)")
    edge_index = torch.tensor(pairs, dtype=torch.long).T
    return validate_graph(None, edge_index, None, str(path), config)


def _to_tensor(value: Any, name: Any, what: str, dtype: torch.dtype) -> torch.Tensor:
    try:
        array = np.asarray(value.detach().cpu() if torch.is_tensor(value) else value)
        if dtype == torch.long:
            if array.size and not np.issubdtype(array.dtype, np.integer):
                raise ValueError(f"dtype {array.dtype}, expected integers")
            return torch.as_tensor(array.astype(np.int64))
        return torch.as_tensor(array.astype(np.float32))
    except (TypeError, ValueError) as exc:
        raise DataError(name, f"{what} cannot be read as numbers ({exc})") from None


def validate_graph(x: Any, edge_index: Any, num_nodes: Any, name: str,
                   config: GraphConfig) -> RawGraph:
    """Check a graph's arrays and return it as a :class:`RawGraph`.

    Shapes:
        x: ``[N, f]`` (or ``[N]``) or ``None``; edge_index: ``[2, E]``.
    """
    edges = _to_tensor(edge_index, name, "edge_index", torch.long)
    if edges.numel() == 0:
        edges = edges.reshape(2, 0)
    if edges.dim() != 2 or edges.shape[0] != 2:
        raise DataError(name, f"edge_index must be [2, num_edges], got {tuple(edges.shape)}")
    features = None
    if x is not None:
        features = _to_tensor(x, name, "node features", torch.float32)
        features = features.unsqueeze(1) if features.dim() == 1 else features
        if features.dim() != 2:
            raise DataError(name, f"node features must be [num_nodes, f], got "
                                  f"{tuple(features.shape)}")
    n = _count_nodes(features, edges, num_nodes, name)
    if edges.numel() and (int(edges.min()) < 0 or int(edges.max()) >= n):
        bad = int(edges.min()) if int(edges.min()) < 0 else int(edges.max())
        raise DataError(name, f"edge index {bad} out of range for a graph of {n} nodes")
    if features is not None:
        if not torch.isfinite(features).all():
            raise DataError(name, "node features contain NaN or infinite values")
        if features.shape[1] > config.feature_dim:
            raise DataError(name, f"has {features.shape[1]} features per node, more than "
                                  f"feature_dim={config.feature_dim}; raise the option")
        if features.shape[1] == 0:
            features = None
    return RawGraph(features, edges, n, name)


def _count_nodes(features: torch.Tensor | None, edges: torch.Tensor, num_nodes: Any,
                 name: str) -> int:
    if features is not None:
        n = features.shape[0]
        if num_nodes is not None and int(num_nodes) != n:
            raise DataError(name, f"num_nodes={int(num_nodes)} but x has {n} rows")
    elif num_nodes is not None:
        n = int(num_nodes)
    else:
        n = int(edges.max()) + 1 if edges.numel() else 0
    if n <= 0:
        raise DataError(name, "graph has no nodes")
    return n
