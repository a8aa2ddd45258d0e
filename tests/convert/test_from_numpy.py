"""The numpy builder: graph, compression settings, report, save -> load -> run round trip."""
from __future__ import annotations

import itertools
import json

import numpy as np
import pytest

import pyruntime
from pyruntime.convert import CompressedModel, from_numpy


@pytest.fixture
def rng() -> np.random.Generator:
    return np.random.default_rng(3)


def _mlp(rng, sizes=(64, 48, 32, 10), softmax=True):
    layers: list[tuple] = [("flatten",)]
    for i, (a, b) in enumerate(itertools.pairwise(sizes)):
        w = (rng.standard_normal((b, a)) / np.sqrt(a)).astype(np.float32)
        layers.append(("linear", w, (0.1 * rng.standard_normal(b)).astype(np.float32)))
        if i < len(sizes) - 2:
            layers.append(("relu",))
    if softmax:
        layers.append(("softmax",))
    return layers


def _close(a, b, rel=1e-5):
    scale = max(1.0, float(np.abs(b).max()))
    assert np.abs(a - b).max() <= rel * scale, np.abs(a - b).max()


@pytest.mark.parametrize("sparsity,bits", [(None, None), (0.9, None), (None, 4), (0.9, 5),
                                           ({"fc1": 0.95, "fc2": 0.5}, {"fc1": 3, "fc3": 6})])
def test_runtime_matches_compressed_weights(rng, sparsity, bits, tmp_path):
    cm = from_numpy(_mlp(rng), (8, 8), sparsity=sparsity, bits=bits)
    x = rng.standard_normal((5, 8, 8)).astype(np.float32)
    ref = cm.run_numpy(x)
    _close(cm.load().run(x), ref)
    # save -> load(path) -> run gives the same
    path = tmp_path / "m.pyrt"
    assert cm.save(path) == path.stat().st_size == cm.file_bytes
    m = pyruntime.load(path)
    _close(m.run(x), ref)
    np.testing.assert_allclose(m.run(x).sum(axis=1), 1.0, rtol=1e-5)  # softmax output


def test_settings_reach_the_right_layers(rng):
    cm = from_numpy(_mlp(rng), (8, 8), sparsity={"fc1": 0.9}, bits={"fc2": 2})
    by = {r.name: r for r in cm.layers}
    assert [r.name for r in cm.layers] == ["fc1", "fc2", "fc3"]
    assert by["fc1"].nonzeros == round(0.1 * 64 * 48) and by["fc1"].bits == 32
    assert by["fc2"].nonzeros == 48 * 32 and by["fc2"].bits <= 2 and by["fc2"].encoding == "codebook"
    assert by["fc3"].encoding == "dense" and by["fc3"].bits == 32
    w = cm.dense_weights()
    assert np.count_nonzero(w["fc1"][0]) == by["fc1"].nonzeros
    assert np.unique(w["fc2"][0]).size <= 4
    with pytest.raises(ValueError, match="fc9"):
        from_numpy(_mlp(rng), (8, 8), sparsity={"fc9": 0.5})


def test_user_zeros_kept_and_masks_honoured(rng):
    layers = _mlp(rng, softmax=False)
    w1 = layers[1][1].copy()
    w1[:, ::2] = 0  # the user's own pruning
    layers[1] = ("linear", w1, layers[1][2], "first")
    cm = from_numpy(layers, (64,))
    assert cm.layers[0].name == "first" and cm.layers[0].nonzeros == np.count_nonzero(w1)
    mask = np.ones_like(w1, dtype=bool)
    mask[:10] = False
    cm = from_numpy(layers, (64,), masks={"first": mask})
    assert np.all(cm.dense_weights()["first"][0][:10] == 0)


def test_report_and_dict(rng):
    cm = from_numpy(_mlp(rng), (8, 8), sparsity=0.9, bits=5, metadata={"task": "unit"})
    text = cm.report()
    for r in cm.layers:
        assert r.name in text and r.encoding in text
        assert r.file_bytes < r.dense_bytes and r.ratio == pytest.approx(r.dense_bytes / r.file_bytes)
        assert r.candidate_bytes[r.encoding] == min(r.candidate_bytes.values())
    assert "total" in text
    assert cm.ratio > 5
    d = cm.to_dict()
    assert [n["op"] for n in d["nodes"]] == ["flatten", "linear", "relu", "linear", "relu", "linear", "softmax"]
    assert json.loads(d["metadata"])["task"] == "unit"
    back = pyruntime._core.read_model(cm.to_bytes())
    assert back["file_size"] == cm.file_bytes
    summary = cm.load().summary()
    assert [s["encoding"] for s in summary] == [r.encoding for r in cm.layers]
    assert [s["bytes"] for s in summary] == [r.file_bytes for r in cm.layers]
    assert isinstance(cm, CompressedModel) and "ratio" in repr(cm)
    assert cm.report_rows()[0]["name"] == "fc1"


def test_bad_graphs_are_rejected(rng):
    w = rng.standard_normal((4, 64)).astype(np.float32)
    with pytest.raises(ValueError, match="last axis of the .8, 8. input: flatten it first"):
        from_numpy([("linear", w, None)], (8, 8))
    with pytest.raises(pyruntime.UnsupportedError, match="conv2d"):
        from_numpy([("conv2d", w)], (64,))
    with pytest.raises(ValueError, match="expects 64"):
        from_numpy([("linear", w, None)], (63,))
    with pytest.raises(ValueError, match="NaN"):
        from_numpy([("linear", np.full((4, 64), np.nan, np.float32), None)], (64,))
    assert issubclass(pyruntime.UnsupportedError, ValueError)


@pytest.mark.parametrize("bad,words", [
    ({"bits": 3.5}, r"bits must be an integer in 1\.\.8, got 3\.5"),
    ({"bits": True}, r"bits must be a number, got True"),
    ({"bits": float("nan")}, r"bits must be an integer in 1\.\.8, got nan"),
    ({"bits": 0}, r"bits must be an integer in 1\.\.8, got 0"),
    ({"bits": 9}, r"bits must be an integer in 1\.\.8, got 9"),
    ({"bits": {"fc2": 2.5}}, r"bits for layer 'fc2' must be an integer in 1\.\.8, got 2\.5"),
    ({"sparsity": True}, r"sparsity must be a number, got True"),
    ({"sparsity": float("nan")}, r"sparsity must be a number in \[0, 1\], got nan"),
    ({"sparsity": 1.5}, r"sparsity must be a number in \[0, 1\], got 1\.5"),
    ({"sparsity": -0.1}, r"sparsity must be a number in \[0, 1\], got -0\.1"),
    ({"sparsity": {"fc1": np.bool_(True)}}, r"sparsity for layer 'fc1' must be a number, got "),
])
def test_bad_compression_settings_are_refused_by_name(rng, bad, words):
    """bits=3.5 was taken as 3, bits=True as 1 bit, sparsity=True pruned every weight: all refused now."""
    with pytest.raises(ValueError, match=words):
        from_numpy(_mlp(rng), (8, 8), **bad)


def test_integral_settings_of_any_numeric_type_are_taken(rng):
    layers = _mlp(rng)
    a = from_numpy(layers, (8, 8), sparsity=0.5, bits=4)
    b = from_numpy(layers, (8, 8), sparsity=np.float32(0.5), bits=np.int64(4))
    assert [(r.encoding, r.nonzeros, r.bits) for r in a.layers] == [(r.encoding, r.nonzeros, r.bits) for r in b.layers]
    # 16 shared values per layer; a dense codebook of a pruned layer adds a zero: 17 entries in 5-bit indices
    assert [r.centroids for r in b.layers] == [16, 16, 16]
    assert [r.bits for r in b.layers] == [4 if r.encoding == "csr+codebook" else 5 for r in b.layers]
    dense = from_numpy(_mlp(rng), (8, 8), bits=4.0).layers[0]
    assert (dense.bits, dense.centroids) == (4, 16)


@pytest.mark.parametrize("bias_shape", [(48, 1), (1, 48), (47,), (49,), ()])
def test_bias_of_the_wrong_shape_is_refused(rng, bias_shape):
    layers = _mlp(rng)
    layers[1] = ("linear", layers[1][1], np.zeros(bias_shape, np.float32))
    with pytest.raises(ValueError, match=r"bias .* does not match 48 outputs"):
        from_numpy(layers, (8, 8))
