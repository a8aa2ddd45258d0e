"""examples/c/run_model.c: builds with CMake (-DPYRT_BUILD_EXAMPLES=ON, static core) in a temporary build
directory, runs on model files written by pyruntime, and prints what numpy computes."""

from __future__ import annotations

import os
import pathlib
import re
import shutil
import subprocess

import numpy as np
import pytest

ROOT = pathlib.Path(__file__).resolve().parents[2]
SOURCE = ROOT / "examples" / "c" / "run_model.c"


def _compiler(names: tuple[str, ...], env: str) -> str | None:
    if os.environ.get(env):
        return shutil.which(os.environ[env].split()[0])
    return next((p for p in map(shutil.which, names) if p), None)


@pytest.fixture(scope="module")
def run_model_exe(tmp_path_factory) -> pathlib.Path:
    cmake = shutil.which("cmake")
    cc = _compiler(("cc", "gcc", "clang"), "CC")
    cxx = _compiler(("c++", "g++", "clang++"), "CXX")
    if not (cmake and cc and cxx):
        pytest.skip(f"needs cmake and a C/C++ compiler (cmake={cmake}, cc={cc}, c++={cxx})")
    if not (ROOT / "CMakeLists.txt").exists():
        pytest.skip("not a source checkout")
    build = tmp_path_factory.mktemp("cmake-example")
    # Debug: no optimizer, the quickest build; the example runs one sample
    configure = [
        cmake,
        "-S",
        str(ROOT),
        "-B",
        str(build),
        "-DPYRT_BUILD_EXAMPLES=ON",
        "-DPYRT_BUILD_PYTHON=OFF",
        "-DPYRT_BUILD_CAPI_SHARED=OFF",
        "-DCMAKE_BUILD_TYPE=Debug",
    ]
    if shutil.which("ninja"):
        configure += ["-G", "Ninja"]
    for cmd in (
        configure,
        [cmake, "--build", str(build), "--target", "pyrt_run_model", "-j", str(os.cpu_count() or 2)],
    ):
        r = subprocess.run(cmd, capture_output=True, text=True, timeout=600, check=False)
        assert r.returncode == 0, f"{' '.join(cmd)}\n{r.stdout[-4000:]}\n{r.stderr[-4000:]}"
    exe = build / "pyrt_run_model"
    assert exe.exists()
    return exe


def run(exe: pathlib.Path, *args) -> subprocess.CompletedProcess:
    return subprocess.run(
        [str(exe), *map(str, args)], capture_output=True, text=True, timeout=60, check=False
    )


def parse(stdout: str) -> dict:
    shapes = dict(re.findall(r"^(input|output) shape: \[([\d, ]*)\]$", stdout, re.MULTILINE))
    head, _, values = stdout.partition("output:\n")
    assert values, stdout
    return {
        "input": tuple(int(d) for d in shapes["input"].split(", ")),
        "output": tuple(int(d) for d in shapes["output"].split(", ")),
        "values": np.array([float(v) for v in values.split()], np.float32),
        "arena": int(re.search(r"^arena bytes: (\d+) of (\d+)$", head, re.MULTILINE).group(1)),
    }


@pytest.fixture(scope="module")
def model(helpers):
    rng = np.random.default_rng(21)
    return helpers.mlp(rng, [60, 32, 24, 10], ["csr+codebook", "csr", "codebook"], input_shape=[3, 4, 5])


@pytest.fixture(scope="module")
def model_file(tmp_path_factory, model) -> pathlib.Path:
    from pyruntime import _core  # the writer produces the file; the C program reads it

    path = tmp_path_factory.mktemp("models") / "model.pyrt"
    path.write_bytes(_core.write_model(model))
    return path


def test_source_is_strict_c99():
    cc = _compiler(("cc", "gcc", "clang"), "CC")
    if cc is None or not SOURCE.exists():
        pytest.skip("needs a C compiler and the source checkout")
    r = subprocess.run(
        [
            cc,
            "-std=c99",
            "-Wall",
            "-Wextra",
            "-pedantic",
            "-Werror",
            "-fsyntax-only",
            f"-I{ROOT / 'csrc' / 'include'}",
            str(SOURCE),
        ],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert r.returncode == 0, r.stderr


def test_runs_an_input_file(run_model_exe, model_file, model, helpers, tmp_path):
    x = np.random.default_rng(3).standard_normal((1, 3, 4, 5)).astype(np.float32)
    (tmp_path / "x.f32").write_bytes(x.tobytes())
    r = run(run_model_exe, model_file, tmp_path / "x.f32")
    assert r.returncode == 0, r.stderr
    out = parse(r.stdout)
    assert out["input"] == (3, 4, 5) and out["output"] == (10,)
    assert 0 < out["arena"] <= 1 << 20
    assert out["values"].shape == (10,)
    np.testing.assert_allclose(out["values"], helpers.forward(model, x)[0], rtol=1e-4, atol=1e-6)
    assert re.search(r"^layers: 7$", r.stdout, re.MULTILINE)  # flatten + 3 linear + 2 relu + softmax


def test_runs_zeros_without_an_input_file(run_model_exe, model_file, model, helpers):
    r = run(run_model_exe, model_file)
    assert r.returncode == 0, r.stderr
    want = helpers.forward(model, np.zeros((1, 3, 4, 5), np.float32))[0]
    np.testing.assert_allclose(parse(r.stdout)["values"], want, rtol=1e-4, atol=1e-6)


def test_errors(run_model_exe, model_file, tmp_path):
    r = run(run_model_exe)
    assert r.returncode == 2 and "usage" in r.stderr
    r = run(run_model_exe, tmp_path / "missing.pyrt")
    assert r.returncode == 1 and "PYRT_IO_ERROR" in r.stderr and "missing.pyrt" in r.stderr
    bad = tmp_path / "bad.pyrt"
    bad.write_bytes(model_file.read_bytes()[:-3])
    r = run(run_model_exe, bad)
    assert r.returncode == 1 and "PYRT_BAD_FORMAT" in r.stderr and "truncated" in r.stderr
    short = tmp_path / "short.f32"
    short.write_bytes(np.zeros(59, np.float32).tobytes())
    r = run(run_model_exe, model_file, short)
    assert r.returncode == 1 and "exactly 60 float32 values" in r.stderr
    long = tmp_path / "long.f32"
    long.write_bytes(np.zeros(61, np.float32).tobytes())
    assert run(run_model_exe, model_file, long).returncode == 1


def test_static_arena_too_small(run_model_exe, helpers, tmp_path):
    """A model whose activations outgrow the 1 MiB static arena is refused when the session is created."""
    from pyruntime import _core

    rng = np.random.default_rng(4)
    wide = helpers.mlp(rng, [8, 400_000, 3], ["csr", "csr"], tensor_kw={"density": 0.0005}, bias=False)
    path = tmp_path / "wide.pyrt"
    path.write_bytes(_core.write_model(wide))
    r = run(run_model_exe, path)
    assert r.returncode == 1
    assert "PYRT_INVALID_ARGUMENT" in r.stderr and "too small" in r.stderr
    assert parse(r.stdout + "output:\n0")["arena"] > 1 << 20  # it printed what it needed first
