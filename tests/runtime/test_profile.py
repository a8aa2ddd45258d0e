"""Model.profile: one timed row per step of the run order, conversions included, and the run unchanged."""
from __future__ import annotations

import numpy as np
import pytest

import pyruntime
from pyruntime.cli import main
from pyruntime.convert import from_numpy


def _mlp(rng: np.random.Generator) -> list[tuple]:
    w1 = rng.standard_normal((32, 64)).astype(np.float32)
    w2 = rng.standard_normal((10, 32)).astype(np.float32)
    return [("flatten",), ("linear", w1, rng.standard_normal(32).astype(np.float32)), ("relu",),
            ("linear", w2, None)]


def test_profile_has_a_row_per_step_that_runs_in_run_order():
    rng = np.random.default_rng(0)
    model = from_numpy(_mlp(rng), (8, 8), sparsity=0.5, bits=4).load()
    x = rng.standard_normal((3, 8, 8)).astype(np.float32)
    before = model.run(x)
    rows = model.profile(x, seconds=0.02)
    # flatten is an alias (moves no data) and the relu is fused into fc1: no rows for them
    assert [r["op"] for r in rows] == ["linear", "linear"]
    assert [r["node"] for r in rows] == [1, 3]
    assert [r["layer"] for r in rows] == ["fc1", "fc2"]
    assert rows[0]["encoding"] in ("csr+codebook", "codebook", "csr", "dense")
    assert rows[0]["output_shape"] == (32,) and rows[1]["output_shape"] == (10,)
    assert all(r["seconds"] > 0 for r in rows)
    assert sum(r["share"] for r in rows) == pytest.approx(1.0)
    # profiling leaves the model as it was: the same outputs after it
    np.testing.assert_array_equal(model.run(x), before)


def test_profile_lists_the_conversions_the_plan_inserts():
    rng = np.random.default_rng(1)
    x = rng.standard_normal((30, 8, 8)).astype(np.float32)
    model = from_numpy(_mlp(rng), (8, 8), quantize="static", calibration=x).load()
    rows = model.profile(x[:2], seconds=0.02)
    conv = [r for r in rows if r["op"] == "convert"]
    assert conv, rows
    # every conversion row names its types and the node that reads what it converts
    for r in conv:
        src, dst = r["layer"].split(" -> ")
        assert src != dst and {src, dst} <= {"f32", "i8", "b1", "b1c"}
        assert 0 <= r["node"] <= len(model.layers())
    ops = [r["op"] for r in rows if r["op"] != "convert"]
    assert ops.count("qlinear") + ops.count("linear") == 2


def test_profile_text_totals_by_kind_and_limits_to_the_slowest():
    rows = [{"step": i, "node": i, "op": op, "layer": f"l{i}", "encoding": enc, "method": meth,
             "output_shape": (4,), "seconds": s, "share": s / 10.0}
            for i, (op, enc, meth, s) in enumerate([("conv2d", "codebook", "direct", 5.0),
                                                    ("relu", "", "", 1.0),
                                                    ("conv2d", "codebook", "direct", 4.0)])]
    text = pyruntime.profile_text(rows, measured_s=11.0, top=2)
    assert "l0" in text and "l2" in text and "l1 " not in text.split("\n\n")[0]
    assert "(1 faster steps not shown)" in text
    kinds = text.split("\n\n")[1]
    assert "conv2d direct codebook      2  9000000.0  90.0%" in kinds
    assert "steps total 10000000.0 us per run; the run untimed 11000000.0 us" in text


def test_profile_rejects_bad_arguments():
    rng = np.random.default_rng(2)
    model = from_numpy(_mlp(rng), (8, 8)).load()
    x = rng.standard_normal((1, 8, 8)).astype(np.float32)
    with pytest.raises(ValueError, match="seconds must be > 0"):
        model.profile(x, seconds=0)
    with pytest.raises(TypeError, match="numpy array"):
        model.profile(x.tolist())
    with pytest.raises(ValueError, match="expected float32"):
        model.profile(x.astype(np.float64))
    with pytest.raises(ValueError, match="runs 0 not in"):
        model._core.profile(x, 0)


def test_bench_per_layer_prints_every_layer(tmp_path, capsys):
    rng = np.random.default_rng(3)
    path = tmp_path / "m.pyrt"
    from_numpy(_mlp(rng), (8, 8), bits=4).save(path)
    assert main(["bench", str(path), "--seconds", "0.05", "--per-layer"]) == 0
    out = capsys.readouterr().out
    per_step = out.split("per step (batch 1, 1 thread):")[1]
    assert "fc1" in per_step and "fc2" in per_step
    assert "linear gemm codebook" in per_step and "steps total" in per_step
