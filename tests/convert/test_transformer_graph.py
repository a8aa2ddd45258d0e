"""A BERT-style encoder built with the Graph API (format version 5): token ids (i32) and an attention mask in,
the hidden states and a pooled vector out. Converted dense and compressed, the runtime agrees with the float64
numpy reference of the same compressed weights."""

from __future__ import annotations

import numpy as np
import pytest

import pyruntime
from pyruntime.convert import Graph, from_graph


def encoder_graph(rng, vocab=50, tokens=12, hidden=32, heads=4, ffn=64, layers=2) -> Graph:
    def w(*shape, scale=0.2):
        return (rng.standard_normal(shape) * scale).astype(np.float32)

    d = hidden // heads
    g = Graph((tokens,), dtype="i32")
    mask = g.add_input((tokens,))
    x = g.embedding(g.input, w(vocab, hidden), name="embeddings.word")
    x = g.add(x, w(tokens, hidden))  # position embeddings: a constant operand
    x = g.layer_norm(x, 1 + w(hidden), w(hidden), eps=1e-12, name="embeddings.norm")
    bias = g.mul(g.sub(g.reshape(mask, (1, 1, tokens)), 1.0), 10000.0)  # (mask - 1) * 10000, [1, 1, T]

    def heads_of(v, kt=False):  # [T, hidden] -> [heads, T, d] (or [heads, d, T])
        v = g.transpose(g.reshape(v, (tokens, heads, d)), (1, 0, 2))
        return g.transpose(v, (0, 2, 1)) if kt else v

    for i in range(layers):
        p = f"layer{i}"
        q = heads_of(g.linear(x, w(hidden, hidden), w(hidden), name=f"{p}.q"))
        k = heads_of(g.linear(x, w(hidden, hidden), w(hidden), name=f"{p}.k"), kt=True)
        v = heads_of(g.linear(x, w(hidden, hidden), w(hidden), name=f"{p}.v"))
        scores = g.add(g.div(g.matmul(q, k), float(np.sqrt(d))), bias)
        ctx = g.matmul(g.softmax(scores, axis=-1), v)                          # [heads, T, d]
        ctx = g.reshape(g.transpose(ctx, (1, 0, 2)), (tokens, hidden))
        x = g.layer_norm(g.add(x, g.linear(ctx, w(hidden, hidden), w(hidden), name=f"{p}.out")),
                         1 + w(hidden), w(hidden), name=f"{p}.norm1")
        h = g.gelu(g.linear(x, w(ffn, hidden), w(ffn), name=f"{p}.ffn1"))
        x = g.layer_norm(g.add(x, g.linear(h, w(hidden, ffn), w(hidden), name=f"{p}.ffn2")),
                         1 + w(hidden), w(hidden), name=f"{p}.norm2")
    cls = g.reshape(g.slice(x, 0, 0, 1), (hidden,))
    pooled = g.tanh(g.linear(cls, w(hidden, hidden), w(hidden), name="pooler"))
    g.set_outputs([x, pooled])
    return g


def inputs(rng, batch=3, vocab=50, tokens=12):
    ids = rng.integers(0, vocab, (batch, tokens))
    mask = np.ones((batch, tokens), np.float32)
    mask[1, 7:] = 0  # a padded sample
    return ids, mask


@pytest.mark.parametrize("settings", [{}, {"sparsity": 0.8, "bits": 4}, {"sparsity": 0.9}, {"quantize": "int8"}])
def test_the_runtime_matches_the_reference_of_the_compressed_weights(rng, settings):
    g = encoder_graph(rng)
    cm = from_graph(g, **settings)
    m = cm.load()
    ids, mask = inputs(rng)
    hidden, pooled = m.run(ids, mask)
    ref_hidden, ref_pooled = cm.run_numpy(ids, mask)
    assert hidden.shape == (3, 12, 32) and pooled.shape == (3, 32)
    np.testing.assert_allclose(hidden, ref_hidden, rtol=1e-4, atol=2e-4)
    np.testing.assert_allclose(pooled, ref_pooled, rtol=1e-4, atol=2e-4)
    assert m.inputs[0]["dtype"] == "int32" and m.inputs[1]["dtype"] == "float32"
    # the padded positions of sample 1 do not change the other positions' results
    ids2 = ids.copy()
    ids2[1, 7:] = (ids2[1, 7:] + 1) % 50
    h2, _ = m.run(ids2, mask)
    np.testing.assert_allclose(h2[1, :7], hidden[1, :7], rtol=1e-5, atol=1e-5)


def test_compression_applies_to_every_weighted_layer_and_the_file_is_smaller(rng):
    g = encoder_graph(rng)
    dense = from_graph(g)
    small = from_graph(g, sparsity=0.8, bits=4)
    names = [r.name for r in small.layers]
    assert "embeddings.word" in names and "layer1.ffn2" in names and "pooler" in names
    assert all(r.encoding in ("codebook", "csr+codebook") for r in small.layers)
    assert small.file_bytes < dense.file_bytes / 4
    assert pyruntime.load(small.to_bytes()).layers()[0]["op"] == "embedding"


def test_graph_errors_name_the_node(rng):
    g = Graph((4,), dtype="i32")
    with pytest.raises(ValueError, match="ids must be an i32 value"):
        Graph((4,)).embedding(0, np.zeros((5, 3), np.float32))
    e = g.embedding(g.input, np.ones((6, 8), np.float32))
    with pytest.raises(ValueError, match="do not broadcast"):
        g.add(e, np.ones(5, np.float32))
    with pytest.raises(ValueError, match="inner dimensions differ"):
        g.matmul(e, e)
    with pytest.raises(ValueError, match="not a permutation"):
        g.transpose(e, (0, 0))
    with pytest.raises(ValueError, match="inputs are added before the first node"):
        g.add_input((3,))
    with pytest.raises(ValueError, match="empty"):
        g.slice(e, 0, 3, 3)
