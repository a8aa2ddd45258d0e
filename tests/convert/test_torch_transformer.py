"""from_torch on Hugging Face's BertModel (tests/convert/torch_models.py: the same modules and forward, eager
attention): two inputs (token ids, attention mask), two outputs (hidden states, pooled vector).

Dense, the runtime matches torch float32 to 1e-4 of the output's scale; compressed (pruned + shared, or int8)
it matches the converter's float64 reference of the compressed weights (``cm.run_numpy``). Padding is masked
out exactly, ids of any integer dtype run alike, ids outside the vocabulary are refused."""

from __future__ import annotations

import numpy as np
import pytest

torch = pytest.importorskip("torch")

import torch_models as tm

import pyruntime
from pyruntime.convert import from_torch

BATCH, TOKENS = 3, 12
# max |runtime - torch fp32| / max |torch fp32|, dense weights
DENSE_TOL = 1e-4
# max |runtime - run_numpy| / max |run_numpy|: the same compressed weights, float32 against float64
REF_TOL = 1e-4
# int8 (dynamic activation scales) against torch fp32: the quantization error, ~1e-2 of the scale
INT8_TORCH_TOL = 5e-2
# int8 against run_numpy: an activation that the float32 runtime and the float64 reference round to
# neighbouring int8 steps (rare, but it happens) moves that token's Linear output by ~max|x| / (127 sqrt(hidden))
# of its scale, ~4e-3 at hidden 64; the two agree to ~1e-7 when no activation does
INT8_REF_TOL = 2e-2


def _bert(seed: int = 0, **kw: object) -> tm.BertModel:
    # std 0.1 rather than BERT's 0.02: at hidden 64 that gives attention that is not near uniform
    return tm.randomize(tm.bert_tiny(**kw), seed, std=0.1)


def _inputs(seed: int = 0, pad: tuple[int, ...] = (TOKENS, 7), batch: int = BATCH, vocab: int = 100):
    ids, mask = tm.bert_inputs(batch, TOKENS, vocab, seed, pad)
    return ids, mask


def _np(ids: torch.Tensor, mask: torch.Tensor) -> tuple[np.ndarray, np.ndarray]:
    """The runtime's inputs: the ids and the mask as numpy arrays of the example's dtypes."""
    return ids.numpy(), mask.numpy()


def _torch(net: torch.nn.Module, ids: torch.Tensor, mask: torch.Tensor) -> tuple[np.ndarray, np.ndarray]:
    with torch.inference_mode():
        seq, pooled = net(ids, mask)
    return seq.numpy(), pooled.numpy()


def _err(got: np.ndarray, ref: np.ndarray) -> float:
    assert got.shape == ref.shape, (got.shape, ref.shape)
    return float(np.abs(got.astype(np.float64) - ref).max() / np.abs(ref).max())


def _close(got: tuple, ref: tuple, tol: float) -> None:
    assert len(got) == len(ref) == 2
    for what, g, r in zip(("sequence_output", "pooled_output"), got, ref, strict=True):
        err = _err(g, r)
        assert err <= tol, f"{what}: normalized max error {err:.3g} > {tol}"


@pytest.fixture(scope="module")
def bert() -> tm.BertModel:
    return _bert()


@pytest.fixture(scope="module")
def dense(bert):
    return from_torch(bert, _inputs())


def test_dense_matches_torch(bert, dense):
    ids, mask = _inputs(1)
    ref = _torch(bert, ids, mask)
    m = dense.load()
    got = m.run(*_np(ids, mask))
    assert isinstance(got, tuple) and got[0].shape == (BATCH, TOKENS, 64) and got[1].shape == (BATCH, 64)
    _close(got, ref, DENSE_TOL)
    _close(dense.run_numpy(*_np(ids, mask)), ref, DENSE_TOL)
    assert [i["dtype"] for i in m.inputs] == ["int32", "int32"]  # the example's mask is int64


def test_every_linear_and_the_word_embeddings_are_layers(bert, dense):
    names = {r.name for r in dense.layers}
    linears = {n for n, mod in bert.named_modules() if isinstance(mod, torch.nn.Linear)}
    assert len(linears) == 6 * 2 + 1
    assert linears <= names, sorted(linears - names)
    assert "embeddings.word_embeddings" in names


def test_batch_sizes_other_than_the_example(bert, dense):
    m = dense.load()
    for batch in (1, 5):
        ids, mask = _inputs(2, pad=(TOKENS, 3, 9)[:batch], batch=batch)
        _close(m.run(*_np(ids, mask)), _torch(bert, ids, mask), DENSE_TOL)


def test_saved_file_runs_the_same_on_several_threads(dense):
    ids, mask = _np(*_inputs(3))
    data = dense.to_bytes()
    one = pyruntime.load(data, threads=1).run(ids, mask)
    two = pyruntime.load(data, threads=2).run(ids, mask)
    for a, b in zip(one, two, strict=True):
        np.testing.assert_array_equal(a, b)


def test_pruned_and_shared_runtime_equals_the_reference(bert, dense):
    cm = from_torch(bert, _inputs(), sparsity=0.8, bits=4)
    ids, mask = _np(*_inputs(4))
    _close(cm.load().run(ids, mask), cm.run_numpy(ids, mask), REF_TOL)
    linears = {n for n, mod in bert.named_modules() if isinstance(mod, torch.nn.Linear)}
    for r in cm.layers:
        if r.name in linears:
            assert r.encoding in ("codebook", "csr+codebook"), (r.name, r.encoding)
            assert 0.15 <= r.density <= 0.25, (r.name, r.density)
    assert cm.file_bytes < dense.file_bytes / 4


def test_int8_runs_close_to_the_reference_and_to_torch(bert):
    cm = from_torch(bert, _inputs(), quantize="int8")
    ids_t, mask_t = _inputs(5)
    ids, mask = _np(ids_t, mask_t)
    got = cm.load().run(ids, mask)
    _close(got, cm.run_numpy(ids, mask), INT8_REF_TOL)
    _close(got, _torch(bert, ids_t, mask_t), INT8_TORCH_TOL)
    assert any("int8" in r.encoding for r in cm.layers)


def test_padding_does_not_change_the_unpadded_positions(bert, dense):
    m = dense.load()
    ids_t, mask_t = _inputs(6, pad=(TOKENS, 7, 4))
    ids, mask = _np(ids_t, mask_t)
    seq, pooled = m.run(ids, mask)
    # other ids at the padded positions
    ids2 = ids.copy()
    ids2[1, 7:] = 1 + (ids2[1, 7:] + 5) % 99
    ids2[2, 4:] = 42
    seq2, pooled2 = m.run(ids2, mask)
    np.testing.assert_allclose(seq2[1, :7], seq[1, :7], rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(seq2[2, :4], seq[2, :4], rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(pooled2, pooled, rtol=1e-5, atol=1e-5)
    np.testing.assert_array_equal(seq2[0], seq[0])
    # torch on the unpadded sequences alone gives those positions
    for i, n in ((1, 7), (2, 4)):
        alone = _torch(bert, ids_t[i:i + 1, :n], mask_t[i:i + 1, :n])
        _close((seq[i:i + 1, :n], pooled[i:i + 1]), alone, DENSE_TOL)


@pytest.mark.parametrize("dtype", [np.int64, np.int32, np.int16, np.uint8, np.uint64])
def test_ids_of_any_integer_dtype(dense, dtype):
    m = dense.load()
    ids, mask = _np(*_inputs(7))
    want = m.run(ids.astype(np.int32), mask)
    got = m.run(ids.astype(dtype), mask)
    for a, b in zip(got, want, strict=True):
        np.testing.assert_array_equal(a, b)


@pytest.mark.parametrize("bad", [100, 1000, -1, 2**31, -(2**40)])
def test_ids_out_of_range_are_refused(dense, bad):
    m = dense.load()
    ids, mask = _np(*_inputs(8))
    ids = ids.astype(np.int64)
    ids[1, 3] = bad
    with pytest.raises(ValueError):
        m.run(ids, mask)


def test_float_attention_mask_in_the_example(bert):
    ids, mask = _inputs(9)
    cm = from_torch(bert, (ids, mask.to(torch.float32)))
    m = cm.load()
    assert [i["dtype"] for i in m.inputs] == ["int32", "float32"]
    _close(m.run(*_np(ids, mask.to(torch.float32))), _torch(bert, ids, mask), DENSE_TOL)


def test_gelu_tanh_variant():
    net = _bert(1, hidden_act="gelu_tanh")
    ids, mask = _inputs(10)
    cm = from_torch(net, (ids, mask))
    gelus = [n for n in cm.to_dict()["nodes"] if n["op"] == "gelu"]
    assert len(gelus) == 2 and all(n["attrs"]["approximate"] == 1 for n in gelus)
    got = cm.load().run(*_np(ids, mask))
    _close(got, _torch(net, ids, mask), DENSE_TOL)
    # the runtime computes the tanh form: far closer to it than to the erf form of the same weights
    vs_tanh = _err(got[0], _torch(net, ids, mask)[0])
    vs_erf = _err(got[0], _torch(_bert(1), ids, mask)[0])
    assert vs_tanh * 10 < vs_erf, (vs_tanh, vs_erf)


def test_transformers_shape_arithmetic():
    """transformers writes the head shapes as ``x.size()[:-1] + (heads, head_dim)``."""
    net = _bert(2, hf_shapes=True)
    ids, mask = _inputs(11)
    cm = from_torch(net, (ids, mask))
    _close(cm.load().run(*_np(ids, mask)), _torch(net, ids, mask), DENSE_TOL)


def test_bert_base_structure_dense():
    """bert-base-uncased's configuration (110 M parameters), sequence 128, batch 1, HF's initializer range."""
    net = tm.randomize(tm.bert_base(), seed=3)
    ids, mask = tm.bert_inputs(1, 128, 30522, seed=3, pad=(100,))
    ref = _torch(net, ids, mask)
    cm = from_torch(net, (ids, mask))
    got = pyruntime.load(cm.to_bytes(), threads=0).run(*_np(ids, mask))
    _close(got, ref, DENSE_TOL)
    assert len([r for r in cm.layers if r.name.startswith("encoder.layer.")]) == 12 * 6


class FusedQKV(torch.nn.Module):
    """Attention with one fused q/k/v projection split three ways (split and chunk), as GPT-2-style blocks
    write it, and a tuple of two outputs."""

    def __init__(self, hidden: int = 32, heads: int = 4) -> None:
        super().__init__()
        self.qkv = torch.nn.Linear(hidden, 3 * hidden)
        self.out = torch.nn.Linear(hidden, hidden)
        self.heads, self.d = heads, hidden // heads

    def forward(self, x):
        q, k, v = self.qkv(x).split(self.heads * self.d, dim=-1)
        b, t, _ = x.shape
        q, k, v = (z.view(b, t, self.heads, self.d).transpose(1, 2) for z in (q, k, v))
        a = torch.softmax(q @ k.transpose(-2, -1) * self.d ** -0.5, dim=-1)
        y = (a @ v).transpose(1, 2).reshape(b, t, -1)
        first, second = self.out(y).chunk(2, dim=-1)
        return torch.sigmoid(first), torch.nn.functional.silu(second)


def test_split_and_chunk_of_a_fused_projection():
    torch.manual_seed(3)
    net = FusedQKV().eval()
    x = torch.randn(2, 10, 32)
    cm = from_torch(net, x, sparsity=0.5)
    with torch.inference_mode():
        ref = net(*[torch.as_tensor(x)])
    ref_cm = cm.run_numpy(x.numpy())
    got = cm.load().run(x.numpy())
    assert len(got) == 2 and got[0].shape == (2, 10, 16)
    for g, r in zip(got, ref_cm, strict=True):
        np.testing.assert_allclose(g, r, rtol=1e-4, atol=1e-5)
    dense = from_torch(net, x).load().run(x.numpy())
    for g, r in zip(dense, ref, strict=True):
        np.testing.assert_allclose(g, r.numpy(), rtol=1e-4, atol=1e-5)
