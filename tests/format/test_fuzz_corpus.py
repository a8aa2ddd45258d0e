"""The fuzzer's corpus through the Python API: every file of fuzz/corpus (and of the directories in
$PYRUNTIME_FUZZ_CORPUS, e.g. the corpus a libFuzzer run grew; .ci/run passes it) is loaded from bytes,
from a path and memory-mapped, and run when it loads and its work is small. The libFuzzer harness drives
the C API; this drives the bindings, and under tools/sanitize_tests.sh (ASan + UBSan) it is the Python
half of the fuzzing.
"""

from __future__ import annotations

import os
import pathlib

import numpy as np
import pytest

import pyruntime
from pyruntime import _core

SEEDS = pathlib.Path(__file__).resolve().parents[2] / "fuzz" / "corpus"
MAX_RUN_WORK = 1 << 22  # operations per sample; the harness skips running above 2^24 for the same reason
MAX_FILES = 20_000


def corpus_files() -> list[pathlib.Path]:
    dirs = [SEEDS] + [pathlib.Path(d) for d in os.environ.get("PYRUNTIME_FUZZ_CORPUS", "").split(os.pathsep) if d]
    files: list[pathlib.Path] = []
    for d in dirs:
        if d.is_dir():
            files += sorted(p for p in d.iterdir() if p.is_file())
    return files[:MAX_FILES]


def outcome(source, **kw) -> tuple[str, object]:
    try:
        return "loaded", pyruntime.load(source, **kw)
    except pyruntime.FormatError as e:
        assert str(e)
        return "refused", str(e)


@pytest.mark.skipif(not SEEDS.is_dir(), reason="fuzz/corpus is not next to the tests (an installed copy)")
def test_every_corpus_file_loads_and_runs_or_is_refused_alike(tmp_path):
    files = corpus_files()
    assert len(files) >= 40
    counts = {"loaded": 0, "refused": 0, "ran": 0}
    for f in files:
        data = f.read_bytes()
        kind, by_bytes = outcome(data)
        path = tmp_path / "m.pyrt"
        path.write_bytes(data)
        for mmap in (False, True):
            k2, other = outcome(path, mmap=mmap, threads=2)
            assert k2 == kind, f"{f.name}: bytes {kind}, path (mmap={mmap}) {k2}: {other}"
            if kind == "refused":
                assert other == by_bytes, f.name  # the same message
        counts[kind] += 1
        if kind == "refused":
            with pytest.raises(pyruntime.FormatError):
                _core.read_model(data)
            continue
        m = by_bytes
        assert m.arena_bytes(1) >= 64 and m.work >= 0
        m.summary_text()
        if m.work > MAX_RUN_WORK or m.arena_bytes(2) > 256 << 20:
            continue
        rng = np.random.default_rng(0)
        xs = [rng.integers(0, 3, (2, *i["shape"][1:])).astype(np.int32) if i["dtype"] == "int32"
              else rng.standard_normal((2, *i["shape"][1:])).astype(np.float32) for i in m.inputs]
        try:
            y = m.run(*xs)
        except ValueError as e:  # small ids may still lie outside a fuzzed embedding table: refused, named
            assert any(i["dtype"] == "int32" for i in m.inputs) and "outside the table" in str(e), f.name
            continue
        threaded = pyruntime.load(data, threads=2).run(*xs)
        mapped = pyruntime.load(path, mmap=True).run(*[x[:1] for x in xs])
        single = m.run(*[x[:1] for x in xs])
        for a, b, c, d in zip(*(v if isinstance(v, tuple) else (v,) for v in (threaded, y, single, mapped)),
                              strict=True):
            np.testing.assert_array_equal(a, b, err_msg=f.name)  # threads never change a bit
            np.testing.assert_array_equal(c, d, err_msg=f.name)
        counts["ran"] += 1
    assert counts["loaded"] >= 30 and counts["refused"] >= 5 and counts["ran"] >= 30, counts
