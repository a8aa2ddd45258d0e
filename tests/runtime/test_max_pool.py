"""max_pool2d on f32: the separable kernel (rows, then the columns of a phase-split row, or of the padded row
itself for 3x3 / 2) against a direct numpy reference over every window, with NaNs and infinities, padding,
ceil_mode and strides 1 to 4."""
from __future__ import annotations

import itertools

import numpy as np
import pytest

import pyruntime
from pyruntime import _core


def _out(n: int, k: int, s: int, lo: int, hi: int, ceil: int) -> int:
    span = n + lo + hi - k
    o = (-(-span // s) if ceil else span // s) + 1
    if ceil and (o - 1) * s >= n + lo:  # the last window must start inside the input or its top/left padding
        o -= 1
    return o


def reference(x: np.ndarray, k, s, pad, ceil: int) -> np.ndarray:
    n, c, h, w = x.shape
    t, left, b, r = pad
    oh, ow = _out(h, k[0], s[0], t, b, ceil), _out(w, k[1], s[1], left, r, ceil)
    y = np.empty((n, c, oh, ow), np.float32)
    for oy, ox in itertools.product(range(oh), range(ow)):
        y0, x0 = oy * s[0] - t, ox * s[1] - left
        win = x[:, :, max(y0, 0):min(y0 + k[0], h), max(x0, 0):min(x0 + k[1], w)].reshape(n, c, -1)
        m = win.max(axis=2)
        m[np.isnan(win).any(axis=2)] = np.nan
        y[:, :, oy, ox] = m
    return y


CASES = {  # input (C, H, W), kernel, stride, padding (t, l, b, r), ceil_mode
    "3x3-s2-ceil": ((3, 13, 17), (3, 3), (2, 2), (0, 0, 0, 0), 1),
    "3x3-s2-pad1": ((2, 16, 16), (3, 3), (2, 2), (1, 1, 1, 1), 0),
    "2x2-s2": ((4, 10, 9), (2, 2), (2, 2), (0, 0, 0, 0), 0),
    "3x3-s1-pad1": ((2, 7, 11), (3, 3), (1, 1), (1, 1, 1, 1), 0),
    "5x3-s3x4-asym": ((2, 19, 23), (5, 3), (3, 4), (2, 1, 0, 2), 1),
    "kernel-wider-than-input": ((1, 6, 3), (2, 4), (1, 1), (0, 1, 0, 1), 0),
    "1x1-s2": ((3, 9, 9), (1, 1), (2, 2), (0, 0, 0, 0), 0),
    "wide-row": ((2, 5, 300), (3, 3), (2, 2), (1, 1, 1, 1), 1),
    "odd-row-s2": ((3, 9, 113), (3, 3), (2, 2), (1, 1, 1, 1), 0),  # the stride-2 split of an odd row
    # 3x3 / 2 reads the padded row in place, 16 (8) outputs per vector: exactly 16 outputs, the last one's
    # third tap past the two vectors it loads
    "3x3-s2-16-outputs": ((2, 7, 33), (3, 3), (2, 2), (0, 0, 0, 0), 0),
}


@pytest.mark.parametrize("case", sorted(CASES))
def test_max_pool_matches_every_window(case):
    shape, k, s, pad, ceil = CASES[case]
    rng = np.random.default_rng(len(case))
    x = rng.standard_normal((2, *shape)).astype(np.float32)
    flat = x.reshape(-1)
    idx = rng.choice(flat.size, size=max(1, flat.size // 40), replace=False)
    flat[idx[: len(idx) // 2]] = np.nan
    flat[idx[len(idx) // 2:]] = rng.choice([np.inf, -np.inf], size=len(idx) - len(idx) // 2)
    want = reference(x, k, s, pad, ceil)
    model = {"input_shape": list(shape), "tensors": [], "nodes": [{"op": "max_pool2d", "inputs": [0], "attrs": {
        "kernel": list(k), "stride": list(s), "padding": list(pad), "ceil_mode": ceil}}]}
    m = pyruntime.load(_core.write_model(model))
    previous = _core.active_isa()
    try:
        for isa in _core.supported_isas():  # the same body compiled per level (kernels/pool_max_f32.h)
            _core.set_isa(isa)
            got = m.run(x)
            assert got.shape == want.shape
            np.testing.assert_array_equal(got, want, err_msg=isa)
    finally:
        _core.set_isa(previous)
    assert np.isnan(want).any() or case == "kernel-wider-than-input"  # the NaNs reached some window
