"""`pyruntime export-c`: the header compiles, holds the file byte for byte, names are C identifiers, and a
file that is not a valid model is refused before anything is printed."""
from __future__ import annotations

import re
import shutil
import subprocess

import numpy as np
import pytest

from pyruntime.cli import main
from pyruntime.convert import from_numpy
from pyruntime.export_c import sanitize_name

CC = shutil.which("cc") or shutil.which("gcc") or shutil.which("clang")

#: writes the array back out and checks its length and alignment; exit 1 on a mismatch
WRITE_BACK = r"""
#include <stdint.h>
#include <stdio.h>
#include "model.h"
int main(int argc, char** argv) {
  if (argc != 2) return 2;
  if (sizeof(NAME) != NAME_len) { fprintf(stderr, "sizeof %zu != len %zu\n", sizeof(NAME), NAME_len); return 1; }
  if ((uintptr_t)NAME % 16 != 0) { fprintf(stderr, "array not 16-byte aligned\n"); return 1; }
  FILE* f = fopen(argv[1], "wb");
  if (!f || fwrite(NAME, 1, NAME_len, f) != NAME_len) return 1;
  return fclose(f) != 0;
}
"""


@pytest.fixture
def model_file(tmp_path):
    rng = np.random.default_rng(5)
    w1 = rng.standard_normal((40, 12)).astype(np.float32)
    w1[rng.random(w1.shape) < 0.8] = 0
    cm = from_numpy([("flatten",), ("linear", w1, rng.standard_normal(40).astype(np.float32)), ("relu",),
                     ("linear", rng.standard_normal((3, 40)).astype(np.float32), None)],
                    input_shape=(3, 4), bits={"fc1": 3})
    path = tmp_path / "1st model-v2.pyrt"
    cm.save(path)
    return path


def _export(capsys, *argv: str) -> tuple[int, str, str]:
    rc = main(["export-c", *argv])
    cap = capsys.readouterr()
    return rc, cap.out, cap.err


@pytest.mark.skipif(CC is None, reason="no host C compiler (cc, gcc or clang)")
@pytest.mark.parametrize("std", ["c99", "c11"])
def test_header_compiles_and_holds_the_file_byte_for_byte(model_file, tmp_path, capsys, std):
    rc, out, err = _export(capsys, str(model_file))
    assert rc == 0, err
    name = "model_1st_model_v2_pyrt"
    assert f"unsigned char {name}[" in out and f"{name}_len" in out
    (tmp_path / "model.h").write_text(out)
    # included twice: the include guard and the shared alignment macros must allow it
    (tmp_path / "main.c").write_text(f'#include "model.h"\n#define NAME {name}\n#define NAME_len {name}_len\n'
                                     + WRITE_BACK)
    exe = tmp_path / "write_back"
    subprocess.run([CC, f"-std={std}", "-Wall", "-Wextra", "-Werror", "-pedantic", "-o", str(exe),
                    str(tmp_path / "main.c")], check=True, cwd=tmp_path)
    subprocess.run([str(exe), str(tmp_path / "back.pyrt")], check=True)
    assert (tmp_path / "back.pyrt").read_bytes() == model_file.read_bytes()


def test_comment_gives_size_sha256_and_the_models_inputs_and_outputs(model_file, capsys):
    import hashlib

    data = model_file.read_bytes()
    rc, out, _ = _export(capsys, str(model_file), "--name", "net")
    assert rc == 0
    head = out.split("*/", 1)[0]
    assert f"({len(data)} bytes)" in head and hashlib.sha256(data).hexdigest() in head
    assert "inputs: input (batch, 3, 4) float32; outputs: output (batch, 3) float32" in head
    assert re.search(r"static const \w* ?unsigned char net\[" + str(len(data)) + r"\]", out)
    assert f"static const size_t net_len = {len(data)};" in out


@pytest.mark.parametrize(("file_name", "expected"), [
    ("lenet5.pyrt", "lenet5_pyrt"),
    ("my-model v2.pyrt", "my_model_v2_pyrt"),
    ("5.pyrt", "model_5_pyrt"),
    ("int", "model_int"),
    ("modèle.pyrt", "mod_le_pyrt"),
])
def test_names_from_file_names_are_sanitized(file_name, expected):
    assert sanitize_name(file_name) == expected
    assert re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", expected)


@pytest.mark.parametrize("bad", ["1abc", "a-b", "static", ""])
def test_a_name_that_is_not_a_c_identifier_is_refused(model_file, capsys, bad):
    rc, out, err = _export(capsys, str(model_file), "--name", bad)
    assert rc == 1 and out == ""
    assert len(err.strip().splitlines()) == 1 and "--name" in err


def test_a_file_that_is_not_a_model_is_refused_in_one_line(tmp_path, capsys):
    p = tmp_path / "notes.pyrt"
    p.write_text("hello, not a model\n")
    rc, out, err = _export(capsys, str(p))
    assert rc == 1 and out == ""
    assert len(err.strip().splitlines()) == 1 and "not a .pyrt model" in err


def test_a_corrupted_model_is_refused_before_anything_is_printed(model_file, capsys):
    data = bytearray(model_file.read_bytes())
    data[-5] ^= 0x40
    model_file.write_bytes(bytes(data))
    rc, out, err = _export(capsys, str(model_file))
    assert rc == 1 and out == ""
    assert len(err.strip().splitlines()) == 1 and "FormatError" in err


def test_an_npy_file_is_named_for_what_it_is(tmp_path, capsys):
    p = tmp_path / "x.npy"
    np.save(p, np.zeros(3, np.float32))
    rc, out, err = _export(capsys, str(p))
    assert rc == 1 and out == "" and "npy file, not a .pyrt model" in err
