"""Model loading: time and peak memory for a model of 100 MB as dense fp32, in three forms and three
loading modes.

Models (two layers, 4096 -> 4096 -> relu -> 2048: 25.2 M weights, 100.7 MB as dense fp32):

  dense         every weight dense fp32 (the file is ~100 MB)
  codebook4     4-bit weight sharing, dense indices (Huffman- or bit-packed streams)
  csr90+cb4     90% pruned, 4-bit shared values on the nonzeros (the Deep Compression form)

Modes:

  bytes   open(path).read() then pyruntime.load(data)   (the file's bytes are copied)
  read    pyruntime.load(path)                           (read into memory, released after decoding)
  mmap    pyruntime.load(path, mmap=True)                (dense tensors used in place, zero-copy)

Time is measured in this process with pytest-benchmark (the file is in the page cache after the first
round). Memory is measured once per case in a fresh subprocess from /proc/self/status: the peak
resident set during loading (VmHWM, reset just before), what stays resident afterwards, and how much of
it is anonymous (private heap) versus file-backed (the shared mapping). Linux only for the memory
figures. extra_info carries them for bench/report.py ("load" rows).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest

import pyruntime
from pyruntime import _core

SIZES = (4096, 4096, 2048)
MODES = ("bytes", "read", "mmap")
FORMS = ("dense", "codebook4", "csr90+cb4")


def _weight(rng: np.random.Generator, form: str, rows: int, cols: int, name: str) -> dict:
    if form == "dense":
        return {"name": name, "encoding": "dense", "shape": [rows, cols],
                "values": rng.standard_normal(rows * cols, dtype=np.float32)}
    centroids = np.linspace(-1.0, 1.0, 16, dtype=np.float32)
    if form == "codebook4":  # a peaked index distribution, as k-means on Gaussian weights gives
        p = np.exp(-0.5 * ((np.arange(16) - 7.5) / 3.0) ** 2)
        idx = rng.choice(16, size=rows * cols, p=p / p.sum()).astype(np.uint8)
        return {"name": name, "encoding": "codebook", "shape": [rows, cols], "indices": idx,
                "centroids": centroids, "index_bits": 4}
    mask = rng.random((rows, cols)) < 0.10
    rowptr = np.concatenate([[0], np.cumsum(mask.sum(axis=1))]).astype(np.uint32)
    colidx = np.nonzero(mask)[1].astype(np.uint32)
    idx = rng.integers(0, 16, size=colidx.size, dtype=np.uint8)
    return {"name": name, "encoding": "csr+codebook", "shape": [rows, cols], "rowptr": rowptr, "colidx": colidx,
            "indices": idx, "centroids": centroids, "index_bits": 4}


def build_model(form: str) -> dict:
    rng = np.random.default_rng(2026)
    tensors, nodes, value = [], [], 0
    for i in range(len(SIZES) - 1):
        rows, cols = SIZES[i + 1], SIZES[i]
        tensors.append(_weight(rng, form, rows, cols, f"fc{i}.weight"))
        tensors.append({"name": f"fc{i}.bias", "encoding": "dense", "shape": [rows],
                        "values": rng.standard_normal(rows, dtype=np.float32)})
        nodes.append({"op": "linear", "inputs": [value], "tensors": [2 * i, 2 * i + 1]})
        value = len(nodes)
        if i + 2 < len(SIZES):
            nodes.append({"op": "relu", "inputs": [value]})
            value = len(nodes)
    return {"input_shape": [SIZES[0]], "nodes": nodes, "tensors": tensors}


@pytest.fixture(scope="module")
def model_files(tmp_path_factory) -> dict[str, Path]:
    out = {}
    d = tmp_path_factory.mktemp("load")
    for form in FORMS:
        path = d / f"{form}.pyrt"
        path.write_bytes(_core.write_model(build_model(form)))
        out[form] = path
    return out


def load(path: Path, mode: str) -> pyruntime.Model:
    if mode == "bytes":
        return pyruntime.load(path.read_bytes())
    return pyruntime.load(path, mmap=mode == "mmap")


_PROBE = textwrap.dedent("""
    import json, sys
    from pathlib import Path
    import pyruntime

    def status():
        out = {}
        for line in open("/proc/self/status"):
            k, _, v = line.partition(":")
            if k in ("VmHWM", "VmRSS", "RssAnon", "RssFile"):
                out[k] = int(v.split()[0]) * 1024
        return out

    path, mode = Path(sys.argv[1]), sys.argv[2]
    before = status()
    with open("/proc/self/clear_refs", "w") as f:   # resets VmHWM to the current RSS
        f.write("5")
    if mode == "bytes":
        model = pyruntime.load(path.read_bytes())
    else:
        model = pyruntime.load(path, mmap=mode == "mmap")
    after = status()
    print(json.dumps({"rss_before": before["VmRSS"], "peak": after["VmHWM"], "rss_after": after["VmRSS"],
                      "anon_before": before["RssAnon"], "anon_after": after["RssAnon"],
                      "file_after": after["RssFile"] - before["RssFile"],
                      "in_place_bytes": model.in_place_bytes, "weight_bytes": model._core.weight_bytes}))
""")


def measure_memory(path: Path, mode: str) -> dict:
    if not os.path.exists("/proc/self/clear_refs"):
        return {}
    r = subprocess.run([sys.executable, "-c", _PROBE, str(path), mode], capture_output=True, text=True, check=True)
    m = json.loads(r.stdout)
    mb = 1 / 2**20
    return {
        "peak_extra_mb": round((m["peak"] - m["rss_before"]) * mb, 1),
        "resident_extra_mb": round((m["rss_after"] - m["rss_before"]) * mb, 1),
        "anon_extra_mb": round((m["anon_after"] - m["anon_before"]) * mb, 1),
        "file_backed_mb": round(m["file_after"] * mb, 1),
        "in_place_mb": round(m["in_place_bytes"] * mb, 1),
        "exec_weight_mb": round(m["weight_bytes"] * mb, 1),
    }


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("form", FORMS)
def test_load(benchmark, model_files, form, mode):
    path = model_files[form]
    dense_bytes = 4 * sum(SIZES[i] * SIZES[i + 1] + SIZES[i + 1] for i in range(len(SIZES) - 1))
    x = np.random.default_rng(0).standard_normal((1, SIZES[0]), dtype=np.float32)
    want = load(path, "bytes").run(x)
    np.testing.assert_array_equal(load(path, mode).run(x), want)  # every mode gives the same model

    benchmark.group = f"load-{form}"
    benchmark.extra_info.update({"kind": "load", "form": form, "mode": mode, "file_bytes": path.stat().st_size,
                                 "dense_bytes": dense_bytes, **measure_memory(path, mode)})
    benchmark.pedantic(load, args=(path, mode), rounds=5, iterations=1, warmup_rounds=1)
