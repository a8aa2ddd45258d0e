"""Format version 5 (FORMAT.md 2, 2.7): graphs of several typed inputs and outputs, read and written as the
spec says, the version written only when the graph needs it, and older versions refused when they hold
what only version 5 can."""

from __future__ import annotations

import numpy as np
import pyrt_spec as spec
import pytest

import pyruntime
from pyruntime import _core


def node(op, inputs, tensors=(), **attrs):
    return {"op": op, "inputs": list(inputs), "tensors": list(tensors), "attrs": attrs}


def dense(name, values):
    values = np.asarray(values, np.float32)
    return {"name": name, "encoding": "dense", "shape": list(values.shape), "values": values.ravel()}


def two_io_model(rng) -> dict:
    """ids [5] (i32) -> embedding [5, 4]; x [5, 4] (f32); outputs: emb * x, and layer_norm(emb + x)."""
    table = rng.standard_normal((11, 4)).astype(np.float32)
    return {
        "inputs": [{"shape": [5], "type": "i32"}, {"shape": [5, 4], "type": "f32"}],
        "nodes": [node("embedding", [0], [0]),   # value 2
                  node("mul", [2, 1]),              # value 3
                  node("add", [2, 1]),              # value 4
                  node("layer_norm", [4], eps=1e-5)],  # value 5
        "outputs": [3, 5],
        "tensors": [dense("emb", table)],
    }


def file_version(data: bytes) -> int:
    return int.from_bytes(data[spec.OFF_VERSION:spec.OFF_VERSION + 4], "little")


def test_a_two_input_two_output_graph_is_version_5_as_the_spec_lays_it_out(rng):
    model = two_io_model(rng)
    data = _core.write_model(model)
    assert file_version(data) == 5
    g = next(e for e in spec.entries(data) if e.type == spec.GRAPH)
    graph = spec.parse_graph(spec.payload(data, g), version=5)
    assert graph["end"] == g.size
    assert graph["inputs"] == [("i32", [5]), ("f32", [5, 4])]
    assert graph["outputs"] == [3, 5]
    assert [n["op"] for n in graph["nodes"]] == ["embedding", "mul", "add", "layer_norm"]
    back = _core.read_model(data)
    assert back["inputs"] == [{"shape": [5], "type": "i32"}, {"shape": [5, 4], "type": "f32"}]
    assert back["outputs"] == [3, 5]


def test_a_two_output_model_runs_against_numpy(rng):
    model = two_io_model(rng)
    m = pyruntime.load(_core.write_model(model))
    assert [i["dtype"] for i in m.inputs] == ["int32", "float32"]
    assert [o["shape"] for o in m.outputs] == [(None, 5, 4), (None, 5, 4)]
    table = model["tensors"][0]["values"].reshape(11, 4)
    ids = rng.integers(0, 11, (3, 5))
    x = rng.standard_normal((3, 5, 4)).astype(np.float32)
    prod, normed = m.run(ids, x)
    emb = table[ids]
    np.testing.assert_array_equal(prod, emb * x)
    s = (emb + x).astype(np.float64)
    ref = (s - s.mean(-1, keepdims=True)) / np.sqrt(s.var(-1, keepdims=True) + 1e-5)
    np.testing.assert_allclose(normed, ref, rtol=1e-5, atol=1e-5)
    # int64 ids are taken too (token ids as torch makes them); outside int32 they are refused
    np.testing.assert_array_equal(m.run(ids.astype(np.int64), x)[0], prod)
    with pytest.raises(ValueError, match="outside int32"):
        m.run(np.full((1, 5), 2**40, np.int64), x[:1])


def test_an_output_may_be_a_graph_input_and_an_i32_value_reads_as_numbers(rng):
    """Outputs are any values: here the f32 input itself, and the ids converted to f32 by the reader (mul)."""
    model = {"inputs": [{"shape": [3], "type": "f32"}, {"shape": [3], "type": "i32"}],
             "nodes": [node("mul", [1], [0])], "outputs": [0, 2, 1],
             "tensors": [dense("half", [0.5])]}
    m = pyruntime.load(_core.write_model(model))
    x = rng.standard_normal((2, 3)).astype(np.float32)
    ids = np.array([[1, -4, 7], [0, 3, 1 << 20]], np.int32)
    a, b, c = m.run(x, ids)
    np.testing.assert_array_equal(a, x)
    np.testing.assert_array_equal(b, ids.astype(np.float32) * np.float32(0.5))
    np.testing.assert_array_equal(c, ids.astype(np.float32))


def test_single_io_graphs_keep_their_old_version(helpers, rng):
    """Nothing of version 5 in the graph: the old layout and version, byte for byte what they were."""
    model = helpers.mlp(rng, [6, 5, 3], ["dense", "csr"])
    assert file_version(_core.write_model(model)) == 1
    same = dict(model, inputs=[{"shape": [6], "type": "f32"}], outputs=[len(model["nodes"])])
    same.pop("input_shape")
    assert _core.write_model(same) == _core.write_model(model)


@pytest.mark.parametrize("what", ["broadcast add", "tensor add", "linear over rows"])
def test_an_older_version_holding_a_version_5_form_is_refused(rng, what):
    """Ops of version 2 used as only version 5 allows: the writer says 5; the same graph in a version-4 file
    (its old layout, hand-built from the spec) is refused naming both versions."""
    if what == "broadcast add":  # [2, 3, 3] + its [2, 1, 1] means
        model = {"input_shape": [2, 3, 3], "nodes": [node("global_avg_pool", [0]), node("add", [0, 1])]}
    elif what == "tensor add":
        model = {"input_shape": [4], "nodes": [node("add", [0], [0])], "tensors": [dense("b", np.ones(4))]}
    else:
        model = {"input_shape": [2, 4], "nodes": [node("linear", [0], [0])],
                 "tensors": [dense("w", rng.standard_normal((3, 4)))]}
    data = _core.write_model(model)
    assert file_version(data) == 5
    entries = spec.entries(data)
    g = next(e for e in entries if e.type == spec.GRAPH)
    graph = spec.parse_graph(spec.payload(data, g), version=5)
    nodes = [{k: v for k, v in n.items() if k != "attrs"} for n in graph["nodes"]]
    sections = [(spec.GRAPH, spec.REQUIRED, spec.graph_payload(graph["input_shape"], nodes))]
    sections += [(e.type, spec.REQUIRED, spec.payload(data, e)) for e in entries if e.type != spec.GRAPH]
    with pytest.raises(pyruntime.FormatError, match="needs format version 5.*the file says 4"):
        pyruntime.load(spec.build_file(sections, version=4))


def _v5_file(inputs, outputs, nodes, tensors=()):
    sections = [(spec.GRAPH, spec.REQUIRED, spec.graph_payload_v5(inputs, outputs, nodes))]
    sections += [(spec.TENSOR, spec.REQUIRED, spec.dense_payload(t["name"], t["shape"], t["values"]))
                 for t in tensors]
    return spec.build_file(sections, version=5)


def test_a_hand_built_version_5_file_loads_and_runs(rng):
    data = _v5_file([("f32", [2, 3]), ("f32", [3])], [3, 2], [node("sub", [0, 1]), node("tanh", [2])])
    m = pyruntime.load(data)
    a = rng.standard_normal((4, 2, 3)).astype(np.float32)
    b = rng.standard_normal((4, 3)).astype(np.float32)
    t, d = m.run(a, b)
    np.testing.assert_array_equal(d, a - b[:, None, :])
    np.testing.assert_allclose(t, np.tanh(a - b[:, None, :]), rtol=1e-6, atol=1e-6)


@pytest.mark.parametrize("inputs,outputs,words", [
    ([], [0], "input count 0"),
    ([("f32", [3])] * 17, [0], "input count 17"),
    ([(2, [3])], [1], "input 0 has type 2"),
    ([("f32", [3])], [], "output count 0"),
    ([("f32", [3])], [2], "output value 2 does not exist"),
    ([("f32", [0])], [1], "input dimension 0 is 0"),
])
def test_bad_version_5_graph_fields_are_refused(inputs, outputs, words):
    with pytest.raises(pyruntime.FormatError, match=words):
        pyruntime.load(_v5_file(inputs, outputs, [node("relu", [0])]))


def test_an_embedding_of_f32_values_is_refused():
    with pytest.raises(ValueError, match="ids must be an integer value"):
        _core.write_model({"input_shape": [3], "nodes": [node("embedding", [0], [0])],
                           "tensors": [dense("t", np.zeros((4, 2)))]})


def test_run_checks_every_input(rng):
    m = pyruntime.load(_core.write_model(two_io_model(rng)))
    ids = rng.integers(0, 11, (2, 5))
    x = rng.standard_normal((2, 5, 4)).astype(np.float32)
    with pytest.raises(ValueError, match="takes 2 inputs, got 1"):
        m.run(ids)
    with pytest.raises(ValueError, match="input 1 has batch 1, input 0 has 2"):
        m.run(ids, x[:1])
    with pytest.raises(ValueError, match="input 0 dtype is float32, expected integers"):
        m.run(ids.astype(np.float32), x)
    with pytest.raises(ValueError, match="input 1 dtype is float64, expected float32"):
        m.run(ids, x.astype(np.float64))
    with pytest.raises(TypeError, match="input 1 must be a numpy array"):
        m.run(ids, x.tolist())
