"""Loading real graph files, and every bad input."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from torch_geometric.data import Data, HeteroData, InMemoryDataset

import anymodal
from anymodal_graph.config import GraphConfig
from anymodal_graph.io import RawGraph, load_graph

CONFIG = GraphConfig(feature_dim=8)


@pytest.mark.parametrize("name", ["data.pt", "dict.pt", "dataset.pt", "graph.json"])
def test_featured_formats_give_the_same_graph(files, graph, name):
    raw = load_graph(files[name], CONFIG)
    assert isinstance(raw, RawGraph) and raw.num_nodes == 4
    assert torch.equal(raw.x, graph.x)
    assert torch.equal(raw.edge_index, graph.edge_index)
    assert raw.source == str(files[name])


@pytest.mark.parametrize("name", ["count.json", "edges.csv"])
def test_featureless_formats(files, graph, name):
    raw = load_graph(files[name], CONFIG)
    assert raw.x is None and raw.num_nodes == 4
    assert torch.equal(raw.edge_index, graph.edge_index)


def test_csv_variants(tmp_path):
    path = tmp_path / "graph.edgelist"
    path.write_text("# a comment\n0 1\n\n1\t2\n2;4\n")
    raw = load_graph(path, CONFIG)
    assert raw.num_nodes == 5 and raw.edge_index.tolist() == [[0, 1, 2], [1, 2, 4]]


def test_json_scalar_node_features_and_objects_in_memory(tmp_path, graph):
    path = tmp_path / "scalar.json"
    path.write_text(json.dumps({"nodes": [0.5, 1.5, 2.5], "edges": [[0, 1]]}))
    raw = load_graph(path, CONFIG)
    assert raw.x.shape == (3, 1) and raw.num_nodes == 3
    assert torch.equal(load_graph(graph, CONFIG).x, graph.x)
    assert load_graph({"edge_index": [[0], [1]], "num_nodes": 3}, CONFIG).num_nodes == 3


# -- bad input ------------------------------------------------------------------------------


def _raises(source, match: str, config: GraphConfig = CONFIG) -> None:
    with pytest.raises(anymodal.DataError, match=match) as info:
        load_graph(source, config)
    if isinstance(source, (str, Path)):
        assert str(source) in str(info.value)


def test_missing_and_unknown(tmp_path):
    for name in ("absent.pt", "absent.json", "absent.csv"):
        _raises(tmp_path / name, "file not found")
    (tmp_path / "graph.gml").write_text("graph [ ]")
    _raises(tmp_path / "graph.gml", "unknown graph extension '.gml'")
    _raises(3.0, "cannot be read as a graph")


def test_corrupt_files(tmp_path, files):
    garbage = tmp_path / "garbage.pt"
    garbage.write_bytes(b"\x80\x02garbage")
    _raises(garbage, "corrupt or not a torch file")
    truncated = tmp_path / "truncated.pt"
    truncated.write_bytes(files["data.pt"].read_bytes()[:200])
    _raises(truncated, "corrupt or not a torch file")
    bad_json = tmp_path / "bad.json"
    bad_json.write_text('{"nodes": [[1], [2]], "edges": [[0, 1]')
    _raises(bad_json, "not valid JSON")
    binary = tmp_path / "binary.csv"
    binary.write_bytes(b"\xff\xfe\x00\x81")
    _raises(binary, "corrupt edge list")


def test_weights_only_refuses_other_classes(tmp_path):
    path = tmp_path / "code.pt"
    torch.save({"edge_index": torch.zeros(2, 0, dtype=torch.long), "hook": Path("x")}, path)
    _raises(path, r"weights_only=True\): it refers to pathlib")


def test_malformed_structures(tmp_path):
    cases = {
        "list.json": [[0, 1]],
        "ragged.json": {"nodes": [[1.0], [1.0, 2.0]], "edges": []},
        "pairs.json": {"nodes": 3, "edges": [[0, 1, 2]]},
        "floats.json": {"nodes": 3, "edges": [[0.5, 1]]},
    }
    for name, doc in cases.items():
        path = tmp_path / name
        path.write_text(json.dumps(doc))
        _raises(path, "expected a JSON object|different lengths|pairs|integers")
    csv_path = tmp_path / "bad.csv"
    csv_path.write_text("u,v\n0,1\n1,two\n")
    _raises(csv_path, "line 3: '1,two' is not an edge")
    two = tmp_path / "two.pt"
    InMemoryDataset.save([Data(x=torch.ones(2, 1), edge_index=torch.tensor([[0], [1]]))] * 2,
                         str(two))
    _raises(two, "holds 2 graphs")
    _raises(HeteroData(), "heterogeneous")
    _raises({"x": torch.ones(3, 2)}, "no 'edge_index'")


def test_no_nodes(tmp_path):
    empty_csv = tmp_path / "empty.csv"
    empty_csv.write_text("source,target\n")
    _raises(empty_csv, "graph has no nodes")
    empty_json = tmp_path / "empty.json"
    empty_json.write_text(json.dumps({"nodes": [], "edges": []}))
    _raises(empty_json, "graph has no nodes")
    empty_pt = tmp_path / "empty.pt"
    torch.save({"edge_index": torch.zeros(2, 0, dtype=torch.long)}, empty_pt)
    _raises(empty_pt, "graph has no nodes")


def test_edge_index_out_of_range(tmp_path):
    path = tmp_path / "oob.json"
    path.write_text(json.dumps({"nodes": [[1.0], [2.0], [3.0]], "edges": [[0, 1], [2, 3]]}))
    _raises(path, "edge index 3 out of range for a graph of 3 nodes")
    pt = tmp_path / "negative.pt"
    torch.save(Data(x=torch.ones(3, 1), edge_index=torch.tensor([[0, -1], [1, 2]])), pt)
    _raises(pt, "edge index -1 out of range")
    bad_shape = tmp_path / "shape.pt"
    torch.save({"x": torch.ones(3, 1), "edge_index": torch.zeros(3, 2, dtype=torch.long)},
               bad_shape)
    _raises(bad_shape, r"edge_index must be \[2, num_edges\]")


def test_nan_and_too_wide_features(tmp_path):
    nan_json = tmp_path / "nan.json"
    nan_json.write_text(json.dumps({"nodes": [[1.0], [float("nan")]], "edges": [[0, 1]]}))
    _raises(nan_json, "node features contain NaN")
    nan_pt = tmp_path / "nan.pt"
    torch.save(Data(x=torch.tensor([[1.0], [float("inf")]]),
                    edge_index=torch.tensor([[0], [1]])), nan_pt)
    _raises(nan_pt, "node features contain NaN or infinite")
    wide = tmp_path / "wide.pt"
    torch.save(Data(x=torch.ones(2, 9), edge_index=torch.tensor([[0], [1]])).to_dict(), wide)
    _raises(wide, "has 9 features per node, more than feature_dim=8")
    mismatch = tmp_path / "mismatch.pt"
    torch.save({"x": torch.ones(2, 1), "edge_index": torch.tensor([[0], [1]]), "num_nodes": 5},
               mismatch)
    _raises(mismatch, "num_nodes=5 but x has 2 rows")
