"""The conv terms of the cost model (pyruntime.cost.conv): the method mirror against the runtime, the
structure of each method's terms, the thread rules of ops/conv.cpp, the built-in profiles' conv terms,
their fit, and the converter and Model.summary pricing convs with them.

Nothing here is timed against a threshold: predictions are checked for the properties the encoding choice
relies on (the method the runtime runs, monotone in work, threads split as the runtime splits them)."""
from __future__ import annotations

import dataclasses
import json
import math

import numpy as np
import pytest

from pyruntime import _core
from pyruntime.convert import Graph, from_graph
from pyruntime.cost import Coef, CostModel, default_cost_model
from pyruntime.cost.calibrate import (
    ConvSample,
    _g,
    _geometry_dict,
    _walked,
    calibrate_conv,
    conv_fit_errors,
    conv_tensor,
    fit_conv,
)
from pyruntime.cost.conv import (
    CONV_CLASSES,
    DIRECT_CLASSES,
    IM2COL_CLASS,
    LANES_CLASS,
    MIN_MACS_PER_TASK,
    ConvCost,
    ConvGeometry,
    conv_method,
    direct_terms,
    im2col_terms,
    im2col_tile,
    lanes_terms,
)
from pyruntime.cost.model import POOL_OVERHEAD_S
from pyruntime.cost.profiles import available, builtin_profile

RESNET_3x3 = _g(64, 64, 3, 56)          # ResNet-18 layer1: direct for sparse, direct for dense (64 < 128)
RESNET_WIDE = _g(256, 256, 3, 14)       # layer3: im2col for dense and codebook
FIRST = _g(3, 64, 7, 112, 2)            # a first conv: direct_lanes for dense
DEPTHWISE = _g(32, 32, 3, 28, groups=32)
GEOMETRIES = [RESNET_3x3, RESNET_WIDE, FIRST, DEPTHWISE, _g(20, 50, 5, 12, pad=0), _g(16, 32, 3, 32, 2),
              _g(128, 256, 3, 28, 2), _g(256, 512, 1, 14, 2, 0), _g(3, 8, 3, 16), _g(4, 4, 3, 8),
              _g(6, 12, 3, 10, groups=2), ConvGeometry(8, 9, 30, 16, 5, 28, 3, 3, 2, 1, 1, 0, 2, 1),
              _g(8, 8, 1, 8, 1, 300)]  # the last: a padding out of proportion, im2col whatever the encoding
# (encoding, density, k): a codebook of mostly zeros runs direct, a dense one may not
VARIANTS = [("dense", 1.0, 0), ("csr", 0.3, 0), ("codebook", 0.3, 16), ("codebook", 1.0, 16),
            ("csr+codebook", 0.3, 16), ("codebook", 0.6, 256)]


def _toy(isa: str = "avx512", **overrides: dict[str, float]) -> CostModel:
    """Linear classes as tests/cost/test_cost_model.py's toy; conv terms of round numbers per class."""
    per = {1: Coef(1e-6, 1e-9, 1e-8), 8: Coef(2e-6, 8e-9, 8e-8), 64: Coef(4e-6, 64e-9, 64e-8)}
    classes = ["dense_f32", "csr_f32", "lut1", "lut2", "lut4", "csr_lut4"] + [
        f"{p}/k{k}" for p in ("lut8", "csr_lut8") for k in (32, 64, 128, 256)]
    direct = {"call": 1e-6, "fma": 1e-9, "far": 1e-9, "entry": 2e-9, "out": 3e-9, "copy": 1e-10}
    conv = {c: dict(direct) for c in set(DIRECT_CLASSES.values())}
    conv[LANES_CLASS] = dict(direct)
    conv[IM2COL_CLASS] = {"call": 1e-6, "gemm": 1.0, "copy": 1e-10, "out": 1e-10}
    for cls, terms in overrides.items():
        conv[cls] = {**conv[cls], **terms}
    return CostModel(name="toy-conv", isa=isa, llc_bytes=1 << 30, read_bandwidth={1: 1e10}, conv=conv,
                     coef={c: dict(per) for c in classes})


# ---- the method mirror -----------------------------------------------------------------------------------

@pytest.mark.parametrize("g", GEOMETRIES, ids=lambda g: f"{g.in_c}-{g.out_c}-k{g.kh}-s{g.stride_h}-g{g.groups}")
def test_method_and_class_mirror_the_runtime(rng, g):
    for enc, density, k in VARIANTS:
        t = conv_tensor(enc, g, density, k, rng)
        conv = _core.Conv2d(_geometry_dict(g), t)
        method = conv_method(g, enc, _walked(t) if enc == "codebook" else None)
        assert method == conv.method, (enc, density)
        cost = ConvCost(default_cost_model(), g.groups, g.positions, g)
        cls = cost.conv_class(enc, _walked(t))
        if method == "direct":
            # the class is the direct kernel's: direct_f32 (layouts direct_f32, direct_csr_f32) or direct_lut8
            assert cls == DIRECT_CLASSES[enc] == conv.layout.replace("_csr", "")
        else:
            assert cls == {"direct_lanes": LANES_CLASS, "im2col": IM2COL_CLASS}[method]


def test_the_resnet_layers_run_the_methods_the_tests_below_assume():
    assert conv_method(RESNET_3x3, "csr") == conv_method(RESNET_3x3, "dense") == "direct"
    assert conv_method(RESNET_WIDE, "dense") == conv_method(RESNET_WIDE, "codebook") == "im2col"
    assert conv_method(RESNET_WIDE, "codebook", entries=RESNET_WIDE.out_c * RESNET_WIDE.patch // 4) == "direct"
    assert conv_method(FIRST, "dense") == conv_method(FIRST, "codebook") == "direct_lanes"
    assert conv_method(FIRST, "csr") == conv_method(DEPTHWISE, "dense") == "direct"


# ---- the terms ---------------------------------------------------------------------------------------------

def test_direct_terms_count_what_the_kernel_does():
    g = RESNET_3x3  # 56 columns: one block of 4 AVX-512 vectors (3 rows a tile); AVX2: 1 block of 4 + one of 3
    e = 1000
    t16, t8 = direct_terms(g, e, 16), direct_terms(g, e, 8)
    assert t16["fma"] == e * 56 * 4 and t8["fma"] == e * 56 * 7
    assert t16["entry"] == e * math.ceil(56 / 3)
    assert t8["entry"] == e * (math.ceil(56 / 3) + math.ceil(56 / 4))
    hp, _, rs = g.padded()
    assert (hp, rs) == (58, 58) and t16["copy"] == 64 * 58 * 58 and t16["call"] == 1
    assert 0 < t16["far"] <= t16["fma"]
    assert direct_terms(g, e, 1)["fma"] == e * 56 * 56  # the scalar kernel: one output at a time
    # half the rows (a thread's piece at batch 1): half the work, the copy of its rows and the taps below
    half = direct_terms(g, e, 16, rows=28)
    assert half["fma"] == t16["fma"] / 2 and half["copy"] == 64 * (27 + 3) * 58


def test_lanes_and_im2col_terms_count_what_the_kernels_do():
    lt = lanes_terms(FIRST, 16)  # 64 outputs: 4 blocks of 16 lanes, 12 outputs a tile
    assert lt["fma"] == 4 * FIRST.patch * FIRST.positions
    assert lt["entry"] == 4 * FIRST.patch * FIRST.out_h * math.ceil(FIRST.out_w / 12)
    assert lanes_terms(FIRST, 8)["fma"] == 2 * lt["fma"]  # AVX2: two vectors per block
    # K = 2304: 256 KiB of patches hold 28 positions, so tiles of the minimum 64, evened out over the
    # plane's 196 positions: 4 tiles of 56
    assert im2col_tile(RESNET_WIDE) == 56
    it = im2col_terms(RESNET_WIDE, gemm_seconds=1e-3)
    assert it["gemm"] == pytest.approx(4e-3) and it["copy"] == 4 * 56 * 2304 and it["out"] == 256 * 196
    # rows 3..9 are positions 42..125: the tiles from 0, 56 and 112 (im2col.cpp runs whole tiles)
    assert im2col_terms(RESNET_WIDE, 1e-3, rows=(3, 9))["gemm"] == pytest.approx(3e-3)


@pytest.mark.parametrize("isa", available())
@pytest.mark.parametrize("g", [RESNET_3x3, RESNET_WIDE, _g(512, 512, 3, 7), DEPTHWISE])
def test_more_nonzeros_cost_more(isa, g):
    m = builtin_profile(isa)
    weights = g.out_c * g.patch
    def pieces(nnz: int, batch: int, threads: int) -> int:  # ops/conv.cpp: how the runtime splits the conv
        work = nnz * g.positions
        if batch == 1:
            return max(1, min(threads, g.out_h, work // MIN_MACS_PER_TASK))
        return min(threads, batch) if work * batch >= 2 * MIN_MACS_PER_TASK else 1

    for enc, k in (("csr", 0), ("csr+codebook", 16), ("csr+codebook", 256)):
        for batch, threads in ((1, 1), (8, 1), (1, 2), (8, 2)):
            cost = ConvCost(m, g.groups, g.positions, g)
            by_split: dict[int, list[float]] = {}
            for d in (0.02, 0.05, 0.1, 0.2, 0.5, 0.9):
                nnz = int(d * weights)
                t = cost.seconds(enc, g.out_c, g.patch, nnz, k, batch=batch, threads=threads)
                by_split.setdefault(pieces(nnz, batch, threads), []).append(t)
            # more entries cost more, among the layers the runtime splits alike (a bigger one may split)
            for ts in by_split.values():
                assert ts == sorted(ts), (enc, batch, threads, ts)
            if threads == 1:
                assert len(by_split) == 1 and ts[0] < ts[-1]
    # a codebook run direct (mostly zeros) walks only its nonzero entries
    cost = ConvCost(m, g.groups, g.positions, g)
    cb = [cost.seconds("codebook", g.out_c, g.patch, weights, 16, entries=int(d * weights)) for d in (0.05, 0.2, 0.5)]
    assert cb == sorted(cb) and cb[0] < cb[-1]


@pytest.mark.parametrize("isa", available())
def test_direct_layers_use_the_direct_terms_not_the_gemm_formula(isa):
    m = builtin_profile(isa)
    g, nnz = RESNET_3x3, RESNET_3x3.out_c * RESNET_3x3.patch // 5
    cost, gemm = ConvCost(m, 1, g.positions, g), ConvCost(m, 1, g.positions)  # without a geometry: the GEMMs
    for enc, k in (("csr", 0), ("csr+codebook", 16)):
        got = cost.seconds(enc, g.out_c, g.patch, nnz, k)
        want = m.conv_seconds(DIRECT_CLASSES[enc], direct_terms(g, nnz, m.lanes()))
        assert got == pytest.approx(want)
        assert got != pytest.approx(gemm.seconds(enc, g.out_c, g.patch, nnz, k), rel=0.01)
    lanes = cost_of(m, FIRST).seconds("codebook", 64, FIRST.patch, 64 * FIRST.patch, 256)
    assert lanes == pytest.approx(m.conv_seconds(LANES_CLASS, lanes_terms(FIRST, m.lanes())))


def cost_of(m: CostModel, g: ConvGeometry) -> ConvCost:
    return ConvCost(m, g.groups, g.positions, g)


def test_im2col_layers_price_their_gemm_tiles_with_the_linear_classes():
    m = _toy()
    g = RESNET_WIDE
    cost = cost_of(m, g)
    got = cost.seconds("dense", g.out_c, g.patch, g.out_c * g.patch)
    gemm = m.seconds("dense", g.out_c, g.patch, 0, batch=im2col_tile(g))
    assert got == pytest.approx(m.conv_seconds(IM2COL_CLASS, im2col_terms(g, gemm)))
    # the im2col class's gemm term scales the GEMM part
    m2 = _toy(im2col={"gemm": 2.0})
    assert cost_of(m2, g).seconds("dense", g.out_c, g.patch, 0) > got


def test_int8_and_profiles_without_conv_terms_price_the_im2col_gemms():
    g = RESNET_3x3
    m = _toy()
    old = CostModel.from_dict({**m.to_dict(), "conv": {}})
    assert not old.knows_conv() and m.knows_conv()
    for model in (m, old):
        cost = cost_of(model, g)
        gemm = ConvCost(model, 1, g.positions)
        want = gemm.seconds("csr", g.out_c, g.patch, 5000, batch=2)
        if model is old:
            assert cost.seconds("csr", g.out_c, g.patch, 5000, batch=2) == pytest.approx(want)
        else:
            assert cost.seconds("csr", g.out_c, g.patch, 5000, batch=2) != pytest.approx(want)
    # the GEMM formula: per group, one patch column per output position and sample
    base = default_cost_model()
    dw = ConvCost(base, 16, 256)
    assert dw.seconds("dense", 16, 9, 144, batch=2) == pytest.approx(16 * base.seconds("dense", 1, 9, 9, batch=512))


# ---- threads (ops/conv.cpp) ----------------------------------------------------------------------------------

def test_batch_one_splits_output_rows_when_there_is_work_for_each():
    m = _toy()
    g = RESNET_3x3
    cost = cost_of(m, g)
    nnz = g.out_c * g.patch // 5  # 7373 entries x 3136 positions: 88 tasks' worth
    one = cost.seconds("csr", g.out_c, g.patch, nnz, threads=1)
    two = cost.seconds("csr", g.out_c, g.patch, nnz, threads=2)
    per_half = m.conv_seconds("direct_f32", direct_terms(g, nnz, 16, rows=28))
    assert two == pytest.approx(per_half + POOL_OVERHEAD_S) and two < one
    # a conv with less than two tasks' worth of work stays on one thread
    small = _g(8, 8, 3, 8)
    tiny = small.out_c * small.patch // 2
    assert tiny * small.positions < 2 * MIN_MACS_PER_TASK
    assert cost_of(m, small).seconds("csr", 8, small.patch, tiny, threads=4) == cost_of(m, small).seconds(
        "csr", 8, small.patch, tiny, threads=1)


def test_batches_split_by_samples():
    m = _toy()
    g = RESNET_3x3
    cost = cost_of(m, g)
    nnz = 4000
    one = cost.seconds("csr", g.out_c, g.patch, nnz, batch=1)
    assert cost.seconds("csr", g.out_c, g.patch, nnz, batch=8) == pytest.approx(8 * one)
    assert cost.seconds("csr", g.out_c, g.patch, nnz, batch=8, threads=2) == pytest.approx(4 * one + POOL_OVERHEAD_S)
    assert cost.seconds("csr", g.out_c, g.patch, nnz, batch=7, threads=2) == pytest.approx(4 * one + POOL_OVERHEAD_S)
    with pytest.raises(ValueError, match="batch and threads must be >= 1"):
        cost.seconds("csr", g.out_c, g.patch, nnz, batch=0)


# ---- profiles and calibration ------------------------------------------------------------------------------

@pytest.mark.parametrize("isa", available())
def test_builtin_profiles_have_conv_terms(isa):
    m = builtin_profile(isa)
    assert m.knows_conv() and set(m.conv) == set(CONV_CLASSES)
    for cls, terms in m.conv.items():
        assert all(v >= 0 and np.isfinite(v) for v in terms.values()), cls
        assert any(v > 0 for n, v in terms.items() if n != "call"), cls  # it grows with the work
    assert "conv" in m.measured


def test_conv_terms_survive_the_json_round_trip(tmp_path):
    m = _toy()
    m.save(tmp_path / "p.json")
    back = CostModel.load(tmp_path / "p.json")
    assert back == m and back.conv == m.conv
    assert "conv" not in CostModel.from_dict({**m.to_dict(), "conv": {}}).to_dict()  # an older profile's form


def test_fit_conv_recovers_a_known_law():
    law = {"call": 2e-6, "fma": 3e-10, "far": 0.0, "entry": 2e-9, "out": 4e-9, "copy": 5e-10}
    samples = []
    for g in (RESNET_3x3, RESNET_WIDE, _g(16, 32, 3, 32, 2), _g(512, 512, 3, 7), DEPTHWISE, _g(64, 128, 1, 28)):
        for d in (0.05, 0.2, 0.5):
            terms = direct_terms(g, int(d * g.out_c * g.patch), 16)
            for batch in (1, 4):
                t = batch * sum(law[n] * v for n, v in terms.items())
                samples.append(ConvSample("direct_f32", "csr", g, d, batch, terms, t))
    fitted = fit_conv(samples)["direct_f32"]
    model = dataclasses.replace(_toy(), conv={"direct_f32": fitted})
    assert np.allclose(conv_fit_errors(model, samples), 1.0, rtol=1e-6)


def test_calibrate_conv_times_the_forced_method():
    base = builtin_profile(_core.active_isa())
    terms, samples = calibrate_conv(base, budget_s=0.0, classes=(LANES_CLASS,))
    assert set(terms) == {LANES_CLASS} and {s.cls for s in samples} == {LANES_CLASS}
    assert {s.batch for s in samples} == {1, 4} and all(s.seconds > 0 for s in samples)
    ratios = conv_fit_errors(dataclasses.replace(base, conv=terms), samples)
    assert all(np.isfinite(ratios)) and all(r > 0 for r in ratios)
    with pytest.raises(ValueError, match="unknown conv class"):
        calibrate_conv(base, classes=("winograd",))


# ---- the converter and Model.summary ------------------------------------------------------------------------

def _cnn(rng, width: int = 32) -> Graph:
    g = Graph((3, 32, 32))
    v = g.relu(g.conv2d(g.input, rng.standard_normal((width, 3, 3, 3)).astype(np.float32), padding=1, name="stem"))
    v = g.relu(g.conv2d(v, rng.standard_normal((width, width, 3, 3)).astype(np.float32), padding=1, name="body"))
    v = g.conv2d(v, rng.standard_normal((2 * width, width, 3, 3)).astype(np.float32), stride=2, padding=1,
                 name="down")
    g.linear(g.flatten(g.global_avg_pool(v)), rng.standard_normal((10, 2 * width)).astype(np.float32), name="head")
    return g


def test_converter_prices_each_conv_by_its_runtime_method(rng):
    g = _cnn(rng)
    model = default_cost_model()
    cm = from_graph(g, sparsity={"body": 0.8, "down": 0.8}, bits=4, optimize="speed", batch=2, cost_model=model)
    loaded = {r["name"].removesuffix(".weight"): r for r in cm.load().layers() if r["encoding"]}
    nodes = {n.name: n for n in g.nodes if n.op == "conv2d"}
    for r in cm.layers:
        if r.name not in nodes:
            continue
        node = nodes[r.name]
        cost = ConvCost.of_node(model, g.shape(node.inputs[0]), node)
        assert cost.method(r.encoding, r.nonzeros) == loaded[r.name]["method"]  # the method priced is the one run
        # the candidates' predictions are the conv terms', not the GEMM formula's
        gemm = ConvCost(model, cost.groups, cost.positions)
        rows, cols = r.shape[0], math.prod(r.shape[1:])
        dense_gemm = gemm.seconds("dense", rows, cols, rows * cols, batch=2)
        assert r.predicted_seconds["dense"] != pytest.approx(dense_gemm, rel=0.01)


def test_summary_prices_convs_as_the_converter(rng):
    cm = from_graph(_cnn(rng), sparsity={"body": 0.8}, bits=4, batch=2)
    rows = {s["layer"]: s for s in cm.load().summary(batch=2, threads=1)}
    for r in cm.layers:
        got = rows[f"{r.name}.weight"]["predicted_s"]
        if r.name == "down":  # stride 2: the summary sees no input shape, and prices its input copy lower
            assert got <= r.predicted_seconds[r.encoding] * (1 + 1e-9)
            assert got == pytest.approx(r.predicted_seconds[r.encoding], rel=0.5)
        else:
            assert got == pytest.approx(r.predicted_seconds[r.encoding], rel=1e-6)


def test_summary_of_a_file_priced_without_conv_terms_is_the_gemm_formula(rng):
    cm = from_graph(_cnn(rng), sparsity=0.5)
    old = CostModel.from_dict({**default_cost_model().to_dict(), "conv": {}})
    rows = {s["layer"]: s for s in cm.load().summary(cost_model=old)}
    body = rows["body.weight"]
    gemm = ConvCost(old, 1, 32 * 32).seconds(body["encoding"], 32, 288, body["nonzeros"], 0,
                                             nbytes=body["exec_bytes"])
    assert body["predicted_s"] == pytest.approx(gemm)


def test_cost_profile_json_has_conv_section():
    for isa in available():
        from importlib import resources

        text = (resources.files("pyruntime.cost") / "profiles" / f"{isa}.json").read_text()
        assert set(json.loads(text)["conv"]) == set(CONV_CLASSES)


def test_speed_ties_between_the_codebook_encodings_go_to_the_smaller_file(rng):
    # a pruned conv stored as a codebook with dense indices or as csr+codebook runs the same direct kernel
    # over the same entries: the same prediction, so "speed" keeps the smaller file
    cm = from_graph(_cnn(rng), sparsity={"body": 0.8, "down": 0.8}, bits=4, optimize="speed")
    for r in cm.layers:
        if r.name in ("body", "down"):
            assert r.predicted_seconds["codebook"] == r.predicted_seconds["csr+codebook"]
            assert r.candidate_bytes["csr+codebook"] < r.candidate_bytes["codebook"]
            assert r.encoding != "codebook"
