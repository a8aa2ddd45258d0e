"""LeNet-300-100 and LeNet-5 on MNIST in int8 (examples/int8_mnist.py --quick): LeNet-300-100 dense and
90%-pruned with dynamic and static activation scales, LeNet-5 all dynamic and all static, each
within 0.3 points of the fp32 model it was converted from, measured through the runtime on the 10,000 test
images. Needs torch and MNIST (skips with the reason otherwise); about a minute."""
from __future__ import annotations

import pytest

torch = pytest.importorskip("torch")

from model_data import load_example, mnist_data_dir


def test_int8_lenet_300_100_within_0_3_points():
    result = load_example("int8_mnist").run(mnist_data_dir(), quick=True, log=None)
    rows = {r["name"]: r for r in result["rows"]}
    for group in ("dense", "pruned 90%"):
        fp32 = rows[f"{group} fp32"]
        assert fp32["accuracy"] >= 0.94, fp32
        for how in ("int8 dynamic", "int8 static"):
            r = rows[f"{group} {how}"]
            assert abs(r["accuracy"] - fp32["accuracy"]) <= 0.003, (r["name"], r["accuracy"], fp32["accuracy"])
            assert r["file_bytes"] < fp32["file_bytes"] / 2.4, r  # 1 byte per weight against 4
            assert all(q for _, _, q, _ in r["layers"]) and all(e < 0.02 for *_, e in r["layers"]), r["layers"]
            want = "csr+int8" if group.startswith("pruned") else "int8"
            assert {enc for _, enc, _, _ in r["layers"]} == {want}, r["layers"]
    fp32 = rows["LeNet-5 fp32"]
    assert fp32["accuracy"] >= 0.97, fp32
    for how, modes in (("int8 dynamic", ["dynamic"] * 4), ("int8 static", ["static"] * 4)):
        r = rows[f"LeNet-5 {how}"]
        assert abs(r["accuracy"] - fp32["accuracy"]) <= 0.003, (r["name"], r["accuracy"], fp32["accuracy"])
        assert [q for _, _, q, _ in r["layers"]] == modes and r["file_bytes"] < fp32["file_bytes"] / 3.5
