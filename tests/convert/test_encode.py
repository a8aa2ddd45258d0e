"""Choice of the smallest encoding among exact candidates, sized by the C++ writer."""
from __future__ import annotations

import numpy as np
import pytest

from pyruntime import _core
from pyruntime.convert import candidates, decode_tensor, encode_layer, kmeans_share, prune_magnitude


@pytest.fixture
def rng() -> np.random.Generator:
    return np.random.default_rng(7)


def _all_sizes(name, w, **kw):
    return {e: _core.encoded_tensor_bytes(t) for e, t in candidates(name, w, **kw).items()}


def test_sparse_layer_becomes_csr(rng):
    w = prune_magnitude(rng.standard_normal((200, 300)), 0.95)
    t, sizes = encode_layer("fc.weight", w, return_sizes=True)
    assert t["encoding"] == "csr"
    assert set(sizes) == {"dense", "csr"}
    assert sizes["csr"] == min(sizes.values()) == _core.encoded_tensor_bytes(t)
    assert sizes["csr"] < sizes["dense"] / 5
    np.testing.assert_array_equal(decode_tensor(t), w)


def test_sparse_shared_layer_becomes_csr_codebook(rng):
    w = prune_magnitude(rng.standard_normal((200, 300)), 0.95)
    t, sizes = encode_layer("fc.weight", w, bits=5, return_sizes=True)
    assert t["encoding"] == "csr+codebook"
    assert set(sizes) == {"dense", "csr", "codebook", "csr+codebook"}
    assert sizes[t["encoding"]] == min(sizes.values())
    # and the reported sizes are the writer's own for each candidate
    c, idx = kmeans_share(w, 5)
    shared = np.where(w != 0, c[idx], 0).astype(np.float32)
    assert _all_sizes("fc.weight", shared, mask=w != 0, centroids=c, indices=idx) == sizes
    np.testing.assert_array_equal(decode_tensor(t), shared)


def test_dense_layer_stays_dense_or_codebook(rng):
    w = rng.standard_normal((64, 128)).astype(np.float32)
    t, sizes = encode_layer("d", w, return_sizes=True)
    assert t["encoding"] == "dense" and sizes["dense"] < sizes["csr"]
    t, sizes = encode_layer("d", w, bits=4, return_sizes=True)
    assert t["encoding"] == "codebook"
    assert sizes["codebook"] == min(sizes.values())
    assert sizes["codebook"] < sizes["dense"] / 6  # 4-bit indices (+ Huffman) vs 32-bit floats


def test_every_candidate_decodes_to_the_same_weights(rng):
    w = prune_magnitude(rng.standard_normal((30, 40)), 0.6)
    mask = w != 0
    c, idx = kmeans_share(w, 3)
    shared = np.where(mask, c[idx], 0).astype(np.float32)
    cands = candidates("w", shared, mask=mask, centroids=c, indices=idx)
    assert set(cands) == {"dense", "csr", "codebook", "csr+codebook"}
    for enc, t in cands.items():
        np.testing.assert_array_equal(decode_tensor(t), shared, err_msg=enc)
        # the writer accepts it and reads back the same weights
        model = {"input_shape": [40], "nodes": [{"op": "linear", "inputs": [0], "tensors": [0]}], "tensors": [t]}
        back = _core.read_model(_core.write_model(model))["tensors"][0]
        assert back["encoding"] == enc
        np.testing.assert_array_equal(decode_tensor(back), shared, err_msg=enc)
    # the dense-index codebook got a zero centroid for the pruned weights
    assert 0.0 in cands["codebook"]["centroids"]


def test_exactly_shared_fp32_weights_get_a_lossless_codebook(rng):
    levels = np.array([-0.75, -0.1, 0.2, 0.6], dtype=np.float32)
    w = levels[rng.integers(0, 4, (100, 120))]
    t = encode_layer("w", w)  # bits=None: nothing is rounded, but 4 distinct values -> codebook wins
    assert t["encoding"] == "codebook"
    np.testing.assert_array_equal(decode_tensor(t), w)


def test_chosen_is_truly_smallest_over_densities(rng):
    for density in (0.02, 0.1, 0.3, 0.6, 1.0):
        w = prune_magnitude(rng.standard_normal((48, 96)), 1 - density)
        for bits in (None, 2, 6):
            t, sizes = encode_layer("w", w, bits=bits, return_sizes=True)
            assert sizes[t["encoding"]] == min(sizes.values()), (density, bits, sizes)
            assert _core.encoded_tensor_bytes(t) == sizes[t["encoding"]]


def test_fully_pruned_layer(rng):
    w = np.zeros((5, 6), np.float32)
    for bits in (None, 3):
        t, sizes = encode_layer("w", w, bits=bits, return_sizes=True)
        assert sizes[t["encoding"]] == min(sizes.values())
        assert sizes[t["encoding"]] < sizes["dense"]
        np.testing.assert_array_equal(decode_tensor(t), w)
