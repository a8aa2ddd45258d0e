"""The cost model: its mirror of the execution layouts, its predictions' structure, profiles, calibration.

No test here times anything against a threshold: predictions are checked for the properties the
encoding choice relies on (bytes equal to the loader's, monotone in work, threads and cache handled as
the runtime does), and calibration for recovering coefficients from data."""
from __future__ import annotations

import json

import numpy as np
import pytest

from pyruntime import _core
from pyruntime.cost import Coef, CostModel, default_cost_model, exec_bytes, kernel_class, layout_of
from pyruntime.cost.calibrate import (
    INT8_CLASSES,
    Sample,
    _nnls_rel,
    calibrate,
    check_exec_bytes,
    fit,
    fit_errors,
    random_tensor,
)
from pyruntime.cost.layouts import (
    i8_p128_bytes,
    i8_p128_bytes_of_steps,
    i8_p128_steps,
    i8_p128m_bytes,
    visits,
)
from pyruntime.cost.model import MIN_BYTES_PER_TASK
from pyruntime.cost.profiles import available, builtin_profile

SHAPES = [(1, 1), (3, 17), (16, 128), (33, 200), (64, 1000), (7, 4096)]


def _args(t: dict) -> tuple[str, int, int, int, int, np.ndarray | None]:
    rows, cols = int(t["shape"][0]), int(np.prod(t["shape"][1:]))
    k = int(np.asarray(t["centroids"]).size) if "centroids" in t else 0
    if "rowptr" in t:
        rowptr = np.asarray(t["rowptr"], dtype=np.int64)
        return t["encoding"], rows, cols, int(rowptr[-1]), k, np.diff(rowptr)
    return t["encoding"], rows, cols, rows * cols, k, None


@pytest.mark.parametrize("shape", SHAPES)
@pytest.mark.parametrize("encoding,k", [("dense", 0), ("csr", 0), ("codebook", 2), ("codebook", 3), ("codebook", 4),
                                        ("codebook", 9), ("codebook", 16), ("codebook", 17), ("codebook", 256),
                                        ("csr+codebook", 1), ("csr+codebook", 16), ("csr+codebook", 17),
                                        ("csr+codebook", 200)])
def test_layout_and_bytes_mirror_the_loader(helpers, rng, shape, encoding, k):
    kw = {} if encoding in ("dense", "csr") else {"k": k}
    if encoding in ("csr", "csr+codebook"):
        kw["density"] = 0.3
    t = helpers.tensor(rng, encoding, shape, **kw)
    pw = _core.PackedWeight(t)
    enc, rows, cols, nnz, kk, counts = _args(t)
    assert layout_of(enc, kk) == pw.layout
    assert exec_bytes(enc, rows, cols, nnz, kk, row_counts=counts) == pw.bytes
    assert kernel_class(enc, kk).split("/")[0] == pw.layout


@pytest.mark.parametrize("shape", SHAPES + [(300, 784), (1024, 1024)])
@pytest.mark.parametrize("density", [0.02, 0.1, 0.5, 1.0])
def test_int8_layout_bytes_mirror_the_loader(rng, shape, density):
    for encoding in ("int8", "csr+int8"):
        t = random_tensor(encoding, *shape, density, 0, rng)
        w = _core.Int8Weight(t)
        if encoding == "int8":
            assert layout_of(encoding) == w.layout and w.steps == 0
            assert exec_bytes(encoding, *shape, shape[0] * shape[1]) == w.bytes
            continue
        padded = i8_p128_bytes(*shape, t["rowptr"], t["colidx"])
        # the same steps in either form, priced as i8_p128 bytes
        assert w.steps == i8_p128_steps(*shape, padded) and i8_p128_bytes_of_steps(*shape, w.steps) == padded
        if _core.cpu_has("vbmi2") and "avx512" in _core.supported_isas():
            assert w.layout == "i8_p128m"
            assert i8_p128m_bytes(*shape, t["rowptr"], t["colidx"], t["qvalues"]) == w.bytes
        else:
            assert layout_of(encoding) == w.layout and padded == w.bytes


@pytest.mark.parametrize("density", [0.02, 0.1, 0.3, 0.5, 0.9, 1.0])
def test_csr_int8_estimate_of_scattered_entries_is_close(rng, density):
    t = random_tensor("csr+int8", 1024, 1000, density, 0, rng)
    exact = i8_p128_bytes(1024, 1000, t["rowptr"], t["colidx"])
    assert abs(exec_bytes("csr+int8", 1024, 1000, int(t["rowptr"][-1])) - exact) <= 0.03 * exact


def test_csr_int8_visits_are_its_step_slots(rng):
    t = random_tensor("csr+int8", 64, 256, 0.05, 0, rng)  # 4 row blocks x 2 panels
    nbytes, nnz = i8_p128_bytes(64, 256, t["rowptr"], t["colidx"]), int(t["rowptr"][-1])
    v = visits("csr+int8", 64, 256, nnz, nbytes)
    assert v % 64 == 0 and v >= 64 * 8 + nnz  # every (block, panel) counts one step, padding counts
    assert visits("int8", 64, 256, nnz) == 64 * 256


def test_wide_csr_uses_32_bit_columns(helpers, rng):
    t = helpers.csr(rng, (2, 70000), density=0.001)
    enc, rows, cols, nnz, _, _ = _args(t)
    assert exec_bytes(enc, rows, cols, nnz) == _core.PackedWeight(t).bytes == 4 * 3 + 8 * nnz


def test_csr_lut4_estimate_without_row_counts_is_close(helpers, rng):
    t = helpers.csr_codebook(rng, (512, 700), density=0.1, k=16)
    enc, rows, cols, nnz, k, counts = _args(t)
    exact = exec_bytes(enc, rows, cols, nnz, k, row_counts=counts)
    assert abs(exec_bytes(enc, rows, cols, nnz, k) - exact) <= 0.05 * exact


def test_kernel_class_separates_byte_table_sizes():
    assert [kernel_class("codebook", k) for k in (17, 32, 33, 64, 65, 128, 129, 256)] == [
        "lut8/k32", "lut8/k32", "lut8/k64", "lut8/k64", "lut8/k128", "lut8/k128", "lut8/k256", "lut8/k256"]
    assert kernel_class("csr+codebook", 100) == "csr_lut8/k128"
    assert kernel_class("codebook", 16) == "lut4"
    assert (layout_of("int8"), layout_of("csr+int8")) == ("i8_r16k4", "i8_p128")
    with pytest.raises(ValueError, match="unknown encoding 'int4'"):
        layout_of("int4")


# ---- predictions --------------------------------------------------------------------------------------

def _toy(llc: int = 1 << 20) -> CostModel:
    """One coefficient set for every class: 1 us per call, 1 ns per visit per sample, 10 ns per row."""
    per = {1: Coef(1e-6, 1e-9, 1e-8), 8: Coef(2e-6, 8e-9, 8e-8), 64: Coef(4e-6, 64e-9, 64e-8)}
    classes = ["dense_f32", "csr_f32", "lut1", "lut2", "lut4", "csr_lut4"] + [
        f"{p}/k{k}" for p in ("lut8", "csr_lut8") for k in (32, 64, 128, 256)]
    return CostModel(name="toy", isa="ref", llc_bytes=llc, read_bandwidth={1: 1e9, 2: 2e9},
                     coef={c: dict(per) for c in classes})


def test_prediction_is_the_fitted_formula_in_cache():
    m = _toy(llc=1 << 30)
    assert m.seconds("csr", 100, 1000, 5000) == pytest.approx(1e-6 + 5000e-9 + 100e-8)
    assert m.seconds("dense", 100, 1000, 0, batch=8) == pytest.approx(2e-6 + 8e-9 * 1e5 + 8e-8 * 100)


def test_prediction_interpolates_between_batch_points_and_scales_above():
    m = _toy(llc=1 << 30)
    t = {b: m.seconds("codebook", 64, 256, 0, 16, batch=b) for b in (1, 2, 4, 8, 16, 64, 128)}
    assert t[1] < t[2] < t[4] < t[8] < t[16] < t[64] < t[128]
    assert t[128] == pytest.approx(2 * t[64])
    assert t[4] == pytest.approx(t[1] + (t[8] - t[1]) * 3 / 7)


def test_prediction_grows_with_nonzeros_and_rows(helpers):
    m = default_cost_model()
    for enc, k in (("csr", 0), ("csr+codebook", 16), ("csr+codebook", 256)):
        for batch in (1, 8, 64):
            ts = [m.seconds(enc, 1024, 1024, nnz, k, batch=batch) for nnz in (1000, 10_000, 100_000, 500_000)]
            assert ts == sorted(ts), (enc, batch, ts)


def test_memory_term_only_past_half_the_cache():
    m = _toy(llc=64 << 20)
    small = 1024 * 1024 * 4  # 4 MiB dense
    assert m.seconds("dense", 1024, 1024, 0) == pytest.approx(1e-6 + 1024 * 1024e-9 + 1024e-8)
    rows = (40 << 20) // (4 * 1024)  # 40 MiB > half of 64 MiB
    compute = 1e-6 + rows * 1024e-9 + rows * 1e-8
    memory = rows * 1024 * 4 / 1e9
    assert m.seconds("dense", rows, 1024, 0) == pytest.approx(np.hypot(compute, memory))
    assert small < m.llc_bytes // 2


def test_threads_follow_the_runtime_split_rules():
    m = _toy(llc=1 << 30)
    tiny = m.seconds("dense", 8, 16, 0, threads=8)  # 512 bytes: below one task
    assert tiny == m.seconds("dense", 8, 16, 0, threads=1)
    rows = 4 * MIN_BYTES_PER_TASK // (4 * 1024)  # exactly 4 tasks' worth
    one = m.seconds("dense", rows, 1024, 0, threads=1)
    assert m.seconds("dense", rows, 1024, 0, threads=2) < one
    # more threads than tasks help no further
    assert m.seconds("dense", rows, 1024, 0, threads=4) == m.seconds("dense", rows, 1024, 0, threads=16)
    # batches split by samples: 16 samples on 4 threads cost what 4 samples cost, plus the pool
    assert m.seconds("dense", rows, 1024, 0, batch=16, threads=4) == pytest.approx(
        m.seconds("dense", rows, 1024, 0, batch=4) + 4e-6)


def _toy8(llc: int = 1 << 30) -> CostModel:
    """_toy plus int8 classes: 1 ns per visit per sample, and 2 ns per column per sample (the quantization)."""
    m = _toy(llc)
    per = {b: Coef(1e-6 * b, 1e-9 * b, 1e-8 * b, 2e-9 * b) for b in (1, 8, 64)}
    return CostModel(name="toy8", isa="ref", llc_bytes=llc, read_bandwidth=m.read_bandwidth,
                     coef={**m.coef, "i8_r16k4": dict(per), "i8_p128": dict(per)})


def test_int8_threads_split_rows_at_every_batch_but_not_the_quantization():
    m = _toy8()
    rows, cols = 1024, 1024  # 1 MiB of int8: 16 tasks' worth
    for batch in (1, 8):
        one = m.seconds("int8", rows, cols, 0, batch=batch, threads=1)
        two = m.seconds("int8", rows, cols, 0, batch=batch, threads=2)
        per = m.coef["i8_r16k4"][batch]
        assert one == pytest.approx(per.seconds(rows * cols, rows, cols))
        assert two == pytest.approx(per.call + (per.per_visit * rows * cols + per.per_row * rows) / 2
                                    + per.per_col * cols + 4e-6)
    # a small layer splits by samples instead
    small = m.seconds("int8", 16, 1024, 0, batch=64, threads=2)
    assert small == pytest.approx(m.seconds("int8", 16, 1024, 0, batch=32) + 4e-6)
    # batches past a chunk of 256 cost one chunk each
    assert m.seconds("int8", 64, 64, 0, batch=600) == pytest.approx(
        2 * m.seconds("int8", 64, 64, 0, batch=256) + m.seconds("int8", 64, 64, 0, batch=88))


def test_int8_weights_stream_once_per_chunk():
    m = _toy8(llc=1 << 20)
    rows, cols = 4096, 1024  # 4 MiB: from memory
    compute = m.coef["i8_r16k4"][64].seconds(rows * cols, rows, cols)
    memory = exec_bytes("int8", rows, cols, 0) / 1e9
    assert m.seconds("int8", rows, cols, 0, batch=64) == pytest.approx(np.hypot(compute, memory))


def test_bad_arguments_are_refused():
    m = _toy()
    with pytest.raises(ValueError, match="batch and threads must be >= 1"):
        m.seconds("dense", 4, 4, 0, batch=0)
    with pytest.raises(KeyError, match="no coefficients for kernel class 'lut4'"):
        CostModel(name="empty", isa="ref", llc_bytes=1, read_bandwidth={1: 1.0}).seconds("codebook", 4, 4, 0, 16)


# ---- profiles -------------------------------------------------------------------------------------------

def test_json_round_trip(tmp_path):
    m = _toy()
    m.save(tmp_path / "p.json")
    back = CostModel.load(tmp_path / "p.json")
    assert back == m
    for bad in ({}, {"name": "x"}, {**m.to_dict(), "read_bandwidth": {}}):
        with pytest.raises(ValueError, match="cost profile"):
            CostModel.from_dict(json.loads(json.dumps(bad)))


def test_builtin_profiles_cover_every_kernel_class():
    assert {"ref", "avx2", "avx512", "avx512vnni"} <= set(available())
    classes = {kernel_class(e, k) for e, k in (("dense", 0), ("csr", 0), ("codebook", 2), ("codebook", 4),
                                               ("codebook", 16)) + tuple(("codebook", k) for k in (32, 64, 128, 256))
               + (("csr+codebook", 16),) + tuple(("csr+codebook", k) for k in (32, 64, 128, 256))
               + (("int8", 0), ("csr+int8", 0))}
    for isa in available():
        m = builtin_profile(isa)
        assert m.isa == isa and set(m.coef) == classes, isa
        assert all(c.call >= 0 and c.per_visit >= 0 and c.per_row >= 0 for pts in m.coef.values()
                   for c in pts.values())
        assert f"ISA {isa}" in m.measured and "int8" in m.measured and "thread" in m.measured


@pytest.mark.parametrize("isa", available())
def test_builtin_profiles_predict_int8_layers(isa):
    m = builtin_profile(isa)
    assert m.knows("int8") and m.knows("csr+int8")
    for batch in (1, 8, 64, 300):
        for threads in (1, 2):
            for enc, nnz in (("int8", 1024 * 1024), ("csr+int8", 100_000)):
                t = m.seconds(enc, 1024, 1024, nnz, batch=batch, threads=threads)
                assert np.isfinite(t) and t > 0, (enc, batch, threads)
    # more samples cost more
    ts = [m.seconds("int8", 1024, 1024, 0, batch=b) for b in (1, 4, 8, 32, 64)]
    assert ts == sorted(ts)


@pytest.mark.parametrize("isa", available())
@pytest.mark.parametrize("shape", [(1024, 1024), (4096, 4096)])
@pytest.mark.parametrize("batch", [1, 8, 64])
def test_csr_int8_prediction_falls_with_sparsity_and_crosses_int8(isa, shape, batch):
    m = builtin_profile(isa)
    rows, cols = shape
    dense = m.seconds("int8", rows, cols, rows * cols, batch=batch)
    densities = (1.0, 0.7, 0.5, 0.3, 0.1, 0.05, 0.02)
    sparse = [m.seconds("csr+int8", rows, cols, int(d * rows * cols), batch=batch) for d in densities]
    assert sparse == sorted(sparse, reverse=True), sparse
    assert dense > sparse[-1], (dense, sparse)  # csr+int8 wins at 98% pruned
    if isa != "ref":  # the scalar int8 kernel is no faster than the scalar csr+int8 one even unpruned
        assert sparse[0] > dense, (dense, sparse)  # dense int8 wins unpruned: the two cross


def test_profile_says_what_it_was_measured_on():
    text = builtin_profile("avx512vnni").measured
    assert "ISA avx512vnni" in text and "1 thread" in text and "/" not in text  # and no file paths


def test_profile_for_an_isa_without_one_says_so():
    m = builtin_profile("sve2")
    assert "used for sve2" in m.name


def test_environment_profile_wins(tmp_path, monkeypatch):
    _toy().save(tmp_path / "mine.json")
    monkeypatch.setenv("PYRUNTIME_COST_PROFILE", str(tmp_path / "mine.json"))
    assert default_cost_model().name == "toy"


def test_environment_profile_missing_or_bad_names_the_variable(tmp_path, monkeypatch):
    monkeypatch.setenv("PYRUNTIME_COST_PROFILE", str(tmp_path / "gone.json"))
    with pytest.raises(FileNotFoundError, match=r"PYRUNTIME_COST_PROFILE=.*gone\.json: No such file.*calibrate"):
        default_cost_model()
    (tmp_path / "bad.json").write_text('{"name": "x"')
    monkeypatch.setenv("PYRUNTIME_COST_PROFILE", str(tmp_path / "bad.json"))
    with pytest.raises(ValueError, match=r"PYRUNTIME_COST_PROFILE=.*bad\.json is not a cost profile"):
        default_cost_model()
    (tmp_path / "other.json").write_text('{"name": "x"}')
    monkeypatch.setenv("PYRUNTIME_COST_PROFILE", str(tmp_path / "other.json"))
    with pytest.raises(ValueError, match=r"is not a cost profile"):
        default_cost_model()


# ---- calibration ----------------------------------------------------------------------------------------

def test_nnls_recovers_exact_coefficients():
    rng = np.random.default_rng(0)
    X = np.column_stack([np.ones(12), rng.integers(1e3, 1e6, 12), rng.integers(10, 4000, 12),
                         rng.integers(10, 4000, 12)]).astype(float)
    truth = np.array([2e-6, 3e-10, 0.0, 5e-9])
    assert np.allclose(_nnls_rel(X, X @ truth), truth, rtol=1e-6, atol=1e-15)


def test_fit_predicts_its_own_samples_from_a_known_law():
    law = {1: Coef(1e-6, 2e-10, 3e-9, 0.0), 8: Coef(3e-6, 1e-9, 1e-8, 2e-9), 64: Coef(2e-5, 5e-9, 0.0, 1e-8)}
    samples = [Sample("csr_f32", "csr", r, c, nnz, 0, b, exec_bytes("csr", r, c, nnz),
                      law[b].seconds(nnz, r, c))
               for r, c, nnz in ((128, 512, 6000), (300, 784, 23000), (1024, 2048, 200000), (256, 8192, 210000),
                                 (4096, 1024, 120000))
               for b in (1, 8, 64)]
    model = CostModel(name="fit", isa="ref", llc_bytes=1 << 40, read_bandwidth={1: 1e10}, coef=fit(samples))
    assert np.allclose(fit_errors(model, samples), 1.0, rtol=1e-6)


def test_calibrate_measures_int8_layers_with_their_quantization():
    model, samples = calibrate(budget_s=0.0, classes=INT8_CLASSES, conv_classes=(), threads=1)
    assert set(model.coef) == {"i8_r16k4", "i8_p128"}
    assert {s.encoding for s in samples} == {"int8", "csr+int8"} and all(s.seconds > 0 for s in samples)
    assert max(s.nnz / (s.rows * s.cols) for s in samples if s.encoding == "csr+int8") > 0.5  # where int8 wins
    assert check_exec_bytes(samples) == []
    ratios = fit_errors(model, samples)
    assert all(np.isfinite(ratios)) and all(r > 0 for r in ratios)


def test_calibrate_measures_and_fits_two_classes():
    model, samples = calibrate(budget_s=0.0, classes=(("dense", 0), ("csr", 0)), conv_classes=("lanes_f32",),
                               threads=1)
    assert set(model.coef) == {"dense_f32", "csr_f32"} and set(model.conv) == {"lanes_f32"}
    assert {type(s).__name__ for s in samples} == {"Sample", "ConvSample"}
    assert {s.batch for s in samples if isinstance(s, Sample)} == {1, 8, 64} and all(s.seconds > 0 for s in samples)
    assert check_exec_bytes(samples) == []
    assert model.isa == _core.active_isa() and model.read_bandwidth[1] > 0
    ratios = fit_errors(model, samples)
    assert all(np.isfinite(ratios)) and all(r > 0 for r in ratios)


@pytest.mark.parametrize("level", ["neon", "neon_dot"])
def test_arm_levels_use_the_avx2_profile(level):
    """The aarch64 levels have no calibrated profile: the AVX2 one stands in, and says so in its name."""
    if "avx2" not in available():
        pytest.skip("no built-in avx2 profile installed")
    m = builtin_profile(level)
    assert m.to_dict()["coef"] == builtin_profile("avx2").to_dict()["coef"]
    assert f"used for {level}" in m.name
