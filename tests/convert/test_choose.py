"""Per-layer encoding choice: objectives, budgets, the recorded reason, and that a choice never changes
the results (every candidate represents the same weights)."""
from __future__ import annotations

import json
import math

import numpy as np
import pytest

import pyruntime
from pyruntime.convert import Graph, Objective, candidates, choose, encoded_bytes, from_graph, from_numpy
from pyruntime.convert.choose import DEFAULT_SIZE_BUDGET, choose_int8
from pyruntime.convert.encode import int8_candidates
from pyruntime.cost import Coef, CostModel, default_cost_model


def _model(per_visit: dict[str, float]) -> CostModel:
    """Batch-independent toy costs: per_visit seconds per weight touched, by kernel class prefix."""
    classes = ["dense_f32", "csr_f32", "lut1", "lut2", "lut4", "csr_lut4"] + [
        f"{p}/k{k}" for p in ("lut8", "csr_lut8") for k in (32, 64, 128, 256)]
    coef = {}
    for c in classes:
        a = per_visit[c.split("/")[0]]
        coef[c] = {b: Coef(0.0, a * b, 0.0) for b in (1, 8, 64)}
    return CostModel(name="toy", isa="ref", llc_bytes=1 << 40, read_bandwidth={1: 1e10}, coef=coef)


# dense-layout kernels cheap per weight, sparse ones dear per entry (the shape of the real profiles)
TOY = _model({"dense_f32": 1e-10, "lut1": 0.6e-10, "lut2": 0.6e-10, "lut4": 0.6e-10, "lut8": 1.3e-10,
              "csr_f32": 5e-10, "csr_lut4": 4e-10, "csr_lut8": 5e-10})
# dense fp32 by far the fastest: optimize="speed" without a bound would store every layer dense
DENSE_FAST = _model({"dense_f32": 1e-11, "lut1": 0.6e-10, "lut2": 0.6e-10, "lut4": 0.6e-10, "lut8": 1.3e-10,
                     "csr_f32": 5e-10, "csr_lut4": 4e-10, "csr_lut8": 5e-10})


def _layer(rng, density: float, bits: int = 4, shape=(64, 256)):
    from pyruntime.convert import kmeans_share

    w = rng.standard_normal(shape).astype(np.float32)
    mask = rng.random(shape) < density
    w[~mask] = 0
    cent, idx = kmeans_share(w, bits, mask=mask)
    w = np.where(mask, cent[idx], 0).astype(np.float32)
    cands = candidates("w", w, mask=mask, centroids=cent, indices=idx)
    return cands, {e: encoded_bytes(t) for e, t in cands.items()}


def test_size_objective_is_the_smallest(rng):
    cands, sizes = _layer(rng, 0.1)
    c = choose(cands, sizes, Objective(), TOY)
    assert c.encoding == min(sizes, key=sizes.get) == "csr+codebook"
    assert c.file_bytes == sizes and set(c.seconds) == set(cands)
    assert c.why.startswith("smallest file") and "others:" in c.why


@pytest.mark.parametrize("density,want", [(0.05, "csr+codebook"), (1.0, "codebook")])
def test_speed_objective_is_the_fastest_predicted(rng, density, want):
    # toy costs: csr_lut4 0.05 * 4e-10 per weight beats lut4's 0.6e-10; with no pruning lut4 wins
    cands, sizes = _layer(rng, density)
    c = choose(cands, sizes, Objective("speed"), TOY)
    assert c.encoding == min(c.seconds, key=c.seconds.get) == want
    assert c.why.startswith("fastest at batch 1 (predicted")


def test_size_budget_excludes_big_fast_encodings(rng):
    cands, sizes = _layer(rng, 0.5)
    fastest = choose(cands, sizes, Objective("speed", size_budget=math.inf), TOY)
    within = choose(cands, sizes, Objective("speed", size_budget=1.0), TOY)
    assert within.encoding == min(sizes, key=sizes.get)
    big = max(sizes, key=sizes.get)
    loose = choose(cands, sizes, Objective("speed", size_budget=sizes[big] / min(sizes.values())), TOY)
    assert loose.encoding == fastest.encoding
    for c in (within, loose):
        assert sizes[c.encoding] <= min(sizes.values()) * (sizes[big] / min(sizes.values()))


def test_speed_has_a_default_size_budget_that_says_when_it_binds(rng):
    cands, sizes = _layer(rng, 0.5)  # by TOY, dense is the fastest and 4x the smallest file
    secs = choose(cands, sizes, Objective(), TOY).seconds
    assert min(secs, key=secs.get) == "dense" and sizes["dense"] > DEFAULT_SIZE_BUDGET * min(sizes.values())
    default = choose(cands, sizes, Objective("speed"), TOY)
    allowed = [e for e in sizes if sizes[e] <= DEFAULT_SIZE_BUDGET * min(sizes.values())]
    assert default.encoding == min(allowed, key=secs.get) != "dense"
    assert "within the default 1.5x of the smallest file" in default.why
    assert "dense is faster" in default.why and "the default size budget bound this choice" in default.why
    explicit = choose(cands, sizes, Objective("speed", size_budget=1.5), TOY)
    assert explicit.encoding == default.encoding and "default" not in explicit.why
    unbounded = choose(cands, sizes, Objective("speed", size_budget=math.inf), TOY)
    assert unbounded.encoding == "dense" and unbounded.why.startswith("fastest at batch 1 (predicted")
    assert "within" not in unbounded.why
    # when the fastest is within the budget, the default says so and nothing about binding
    cands, sizes = _layer(rng, 0.05)
    free = choose(cands, sizes, Objective("speed"), TOY)
    assert free.encoding == min(free.seconds, key=free.seconds.get) and "bound" not in free.why


def test_objective_records_the_budget_in_force():
    assert Objective("speed").budget == DEFAULT_SIZE_BUDGET and Objective("speed").default_budget
    assert Objective("speed").to_dict()["size_budget"] == DEFAULT_SIZE_BUDGET
    assert Objective("speed", size_budget=3.0).to_dict()["size_budget"] == 3.0
    assert Objective("speed", size_budget=math.inf).budget is None
    assert Objective("speed", size_budget=math.inf).to_dict()["size_budget"] is None
    assert Objective().budget is None and Objective(speed_budget=2.0).to_dict()["speed_budget"] == 2.0
    assert json.loads(json.dumps(Objective("speed", size_budget=math.inf).to_dict()))  # no Infinity in JSON


def _cnn(rng):
    g = Graph((3, 24, 24))
    v = g.relu(g.conv2d(g.input, rng.standard_normal((16, 3, 3, 3)).astype(np.float32), padding=1, name="stem"))
    v = g.relu(g.conv2d(v, rng.standard_normal((32, 16, 3, 3)).astype(np.float32), padding=1, name="c1"))
    v = g.relu(g.conv2d(v, rng.standard_normal((64, 32, 3, 3)).astype(np.float32), stride=2, padding=1, name="c2"))
    v = g.relu(g.conv2d(v, rng.standard_normal((64, 64, 3, 3)).astype(np.float32), padding=1, name="c3"))
    g.linear(g.flatten(g.global_avg_pool(v)), rng.standard_normal((10, 64)).astype(np.float32), name="fc")
    return g


def _weight_bytes(cm) -> int:
    return sum(r.file_bytes for r in cm.layers)


@pytest.mark.parametrize("model", ["default", "dense-fast"])
@pytest.mark.parametrize("batch,threads", [(1, 1), (8, 2)])
def test_speed_file_is_at_most_the_default_budget_over_the_size_file(rng, model, batch, threads):
    cost_model = default_cost_model() if model == "default" else DENSE_FAST
    g = _cnn(rng)
    kw = {"sparsity": {"c1": 0.8, "c2": 0.8, "c3": 0.8, "fc": 0.5}, "bits": 4, "batch": batch, "threads": threads,
          "cost_model": cost_model}
    size, speed = from_graph(g, **kw), from_graph(g, optimize="speed", **kw)
    assert _weight_bytes(speed) <= DEFAULT_SIZE_BUDGET * _weight_bytes(size)
    for r in speed.layers:
        assert r.candidate_bytes[r.encoding] <= DEFAULT_SIZE_BUDGET * min(r.candidate_bytes.values())
    assert speed.metadata["encoding_choice"]["size_budget"] == DEFAULT_SIZE_BUDGET
    if model == "dense-fast":  # dense layers the fastest: the budget binds, and says so
        bound = [r for r in speed.layers if "the default size budget bound this choice" in r.why]
        assert bound and all(r.encoding != "dense" and r.predicted_seconds["dense"] < r.predicted_seconds[r.encoding]
                             for r in bound)
        # a larger budget lets the file grow, each layer up to it (dense: 5-22x the smallest here)
        larger = from_graph(g, optimize="speed", size_budget=10.0, **kw)
        assert _weight_bytes(speed) < _weight_bytes(larger) <= 10.0 * _weight_bytes(size)
        assert all(r.candidate_bytes[r.encoding] <= 10.0 * min(r.candidate_bytes.values()) for r in larger.layers)
        assert larger.metadata["encoding_choice"]["size_budget"] == 10.0
        # and math.inf removes the bound: every layer the fastest
        free = from_graph(g, optimize="speed", size_budget=math.inf, **kw)
        assert _weight_bytes(free) > DEFAULT_SIZE_BUDGET * _weight_bytes(size)
        assert free.metadata["encoding_choice"]["size_budget"] is None
        assert all(r.encoding == min(r.predicted_seconds, key=r.predicted_seconds.get) for r in free.layers)


def test_speed_budget_trades_bytes_for_time(rng):
    cands, sizes = _layer(rng, 0.3)
    secs = choose(cands, sizes, Objective(), TOY).seconds
    fastest = min(secs, key=secs.get)
    tight = choose(cands, sizes, Objective("size", speed_budget=1.0), TOY)
    assert tight.encoding == fastest
    budget = 1.5
    c = choose(cands, sizes, Objective("size", speed_budget=budget), TOY)
    allowed = [e for e in secs if secs[e] <= budget * secs[fastest]]
    assert c.encoding == min(allowed, key=sizes.get)
    assert "within 1.5x of the fastest" in c.why


@pytest.mark.parametrize("kw,msg", [
    ({"optimize": "latency"}, "optimize must be one of"),
    ({"batch": 0}, "batch must be an int >= 1"),
    ({"threads": 1.5}, "threads must be an int >= 1"),
    ({"optimize": "speed", "size_budget": 0.5}, "size_budget must be a factor >= 1.0"),
    ({"optimize": "size", "speed_budget": float("nan")}, "speed_budget must be a factor"),
    ({"optimize": "speed", "size_budget": True}, "size_budget must be a factor"),
    ({"optimize": "size", "size_budget": 2.0}, "size_budget bounds optimize='speed'"),
    ({"optimize": "speed", "speed_budget": 2.0}, "speed_budget bounds optimize='size'"),
])
def test_bad_objectives_are_refused(kw, msg):
    with pytest.raises(ValueError, match=msg):
        Objective(**kw)


def _mlp(rng):
    w1 = rng.standard_normal((96, 200)).astype(np.float32)
    w2 = rng.standard_normal((10, 96)).astype(np.float32)
    return [("linear", w1, rng.standard_normal(96).astype(np.float32)), ("relu",),
            ("linear", w2, None)]


@pytest.mark.parametrize("kw", [{}, {"optimize": "speed"}, {"optimize": "speed", "batch": 64},
                                {"optimize": "speed", "size_budget": 1.1}, {"speed_budget": 2.0},
                                {"optimize": "speed", "batch": 8, "threads": 2}])
def test_every_objective_computes_the_same_function(rng, kw):
    layers = _mlp(rng)
    x = rng.standard_normal((7, 200)).astype(np.float32)
    ref = from_numpy(layers, [200], sparsity={"fc1": 0.6, "fc2": 0.2}, bits=4)
    cm = from_numpy(layers, [200], sparsity={"fc1": 0.6, "fc2": 0.2}, bits=4, **kw)
    y_ref, y = ref.load().run(x), cm.load().run(x)
    np.testing.assert_allclose(y, y_ref, rtol=1e-5, atol=1e-5 * float(np.abs(y_ref).max()))
    for r in cm.layers:
        assert r.encoding in r.candidate_bytes and r.predicted_seconds.keys() == r.candidate_bytes.keys()
        objective = kw.get("optimize", "size")
        if objective == "speed" and "size_budget" not in kw:  # the fastest within the default size budget
            smallest = min(r.candidate_bytes.values())
            allowed = {e: t for e, t in r.predicted_seconds.items() if r.candidate_bytes[e] <= 1.5 * smallest}
            assert r.predicted_seconds[r.encoding] == min(allowed.values())
        if objective == "size" and "speed_budget" not in kw:
            assert r.candidate_bytes[r.encoding] == min(r.candidate_bytes.values())


def test_choice_is_recorded_in_the_file_and_shown_by_summary(rng):
    cm = from_numpy(_mlp(rng), [200], sparsity=0.9, bits=4, optimize="speed", batch=8, cost_model=TOY)
    meta = json.loads(pyruntime.load(cm.to_bytes()).metadata)
    choice = meta["encoding_choice"]
    assert choice["optimize"] == "speed" and choice["batch"] == 8 and choice["cost_model"] == "toy"
    assert choice["why"] == {r.name: r.why for r in cm.layers}
    model = cm.load()
    rows = model.summary(batch=8, cost_model=TOY)
    assert [r["why"] for r in rows] == [r.why for r in cm.layers]
    assert all(r["why"].startswith("fastest at batch 8") for r in rows)
    for r, rep in zip(rows, cm.layers):
        assert r["predicted_s"] == pytest.approx(rep.predicted_seconds[rep.encoding], rel=1e-9)
    text = model.summary_text(batch=8)
    assert "why this encoding:" in text and "us@b8 (pred)" in text
    assert "encoding choice:" in cm.report()


def test_summary_of_a_file_from_another_writer_has_no_reason(every_encoding_bytes):
    rows = pyruntime.load(every_encoding_bytes).summary()
    assert [r["why"] for r in rows] == [""] * len(rows)
    assert [r["layout"] for r in rows] == ["dense_f32", "csr_f32", "lut4", "csr_lut4"]  # k = 5: 4-bit
    assert all(r["predicted_s"] > 0 for r in rows)


# ---- int8 and csr+int8 --------------------------------------------------------------------------------

def _model8(dense_per_weight: float, sparse_per_slot: float) -> CostModel:
    """TOY plus int8 classes: seconds per weight (int8) and per step slot (csr+int8), per sample."""
    coef = dict(TOY.coef)
    coef["i8_r16k4"] = {b: Coef(0.0, dense_per_weight * b, 0.0) for b in (1, 8, 64)}
    coef["i8_p128"] = {b: Coef(0.0, sparse_per_slot * b, 0.0) for b in (1, 8, 64)}
    return CostModel(name="toy8", isa="ref", llc_bytes=1 << 40, read_bandwidth={1: 1e10}, coef=coef)


def _int8_layer(rng, density: float, shape=(256, 512)):
    q = rng.integers(-127, 128, shape).astype(np.int8)
    q[rng.random(shape) >= density] = 0
    cands = int8_candidates("w", q, np.full(shape[0], 0.01, np.float32))
    return cands, {e: encoded_bytes(t) for e, t in cands.items()}


@pytest.mark.parametrize("density", [0.05, 0.3, 0.6, 1.0])
def test_int8_size_picks_the_smaller_and_speed_the_faster_predicted(rng, density):
    cands, sizes = _int8_layer(rng, density)
    # csr+int8 dear per slot: int8 the faster at every density here, csr+int8 the smaller when pruned
    model = _model8(0.1e-9, 10e-9)
    size, speed = choose_int8(cands, sizes, Objective(), model), choose_int8(
        cands, sizes, Objective("speed", size_budget=math.inf), model)
    assert size.encoding == min(sizes, key=lambda e: (sizes[e], e != "int8"))
    assert speed.encoding == min(speed.seconds, key=speed.seconds.get) == "int8"
    assert size.why.startswith("smallest file") and speed.why.startswith("fastest at batch 1")
    if density <= 0.3:
        assert size.encoding == "csr+int8"  # so the objectives disagree: the test can tell them apart


def test_int8_speed_follows_the_default_cost_model(rng):
    model = default_cost_model()
    picks = {}
    for density in (0.02, 1.0):
        cands, sizes = _int8_layer(rng, density, shape=(1024, 1024))
        c = choose_int8(cands, sizes, Objective("speed", batch=8), model)
        assert c.seconds[c.encoding] == min(c.seconds.values())
        picks[density] = c.encoding
    assert picks == {0.02: "csr+int8", 1.0: "int8"}


def test_int8_budgets_apply_as_for_float_layers(rng):
    cands, sizes = _int8_layer(rng, 0.3)
    model = _model8(0.1e-9, 10e-9)
    assert choose_int8(cands, sizes, Objective("size", speed_budget=1.0), model).encoding == "int8"
    assert choose_int8(cands, sizes, Objective("speed", size_budget=1.0), model).encoding == "csr+int8"


def test_int8_without_int8_timings_is_the_smallest(rng):
    cands, sizes = _int8_layer(rng, 0.1)
    c = choose_int8(cands, sizes, Objective("speed"), TOY)
    assert c.encoding == "csr+int8" and "toy has no int8 timings" in c.why and c.seconds == {}


@pytest.mark.parametrize("optimize", ["size", "speed"])
def test_int8_layers_record_the_choice(rng, optimize):
    w = rng.standard_normal((64, 200)).astype(np.float32)
    w[rng.random(w.shape) < 0.4] = 0  # 60% kept: csr+int8 the bigger file, and by toy8 the faster
    model = _model8(10e-9, 0.1e-9)
    cm = from_numpy([("linear", w, None)], [200], quantize="dynamic", optimize=optimize, cost_model=model)
    r = cm.layers[0]
    assert r.encoding == ("int8" if optimize == "size" else "csr+int8")
    assert r.candidate_bytes["int8"] < r.candidate_bytes["csr+int8"]
    assert set(r.predicted_seconds) == {"int8", "csr+int8"}
    assert r.why.startswith("int8 (dynamic activation scales); " + r.encoding + ": "
                            + ("smallest file" if optimize == "size" else "fastest at batch 1"))
    meta = json.loads(pyruntime.load(cm.to_bytes()).metadata)
    assert meta["encoding_choice"]["why"]["fc1"] == r.why
    row = cm.load().summary(cost_model=model)[0]
    assert row["predicted_s"] == pytest.approx(r.predicted_seconds[r.encoding], rel=1e-2)
