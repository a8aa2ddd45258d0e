"""``pyruntime export-c``: a .pyrt model as a C header, for firmware that runs it from flash.

The header holds the file's bytes, unchanged, as ``static const unsigned char <name>[]`` (16-byte aligned,
so it lands in flash with the alignment the runtime reads its sections at) and ``<name>_len``, the byte
count. The model is loaded first (``pyruntime.load``: every checksum and field checked), so a file that
is not a valid model is refused before anything is written. A comment at the top says what the array
is: size, SHA-256 and the model's inputs and outputs, as ``pyruntime inspect`` would list them.
"""
from __future__ import annotations

import hashlib
import re
from pathlib import Path

#: C99 keywords (and the C11 ones a C99 compiler may still reserve): not usable as the array's name.
_C_KEYWORDS = frozenset([
    "auto", "break", "case", "char", "const", "continue", "default", "do", "double", "else", "enum", "extern",
    "float", "for", "goto", "if", "inline", "int", "long", "register", "restrict", "return", "short", "signed",
    "sizeof", "static", "struct", "switch", "typedef", "union", "unsigned", "void", "volatile", "while", "_Alignas",
    "_Alignof", "_Atomic", "_Bool", "_Complex", "_Generic", "_Imaginary", "_Noreturn", "_Static_assert",
    "_Thread_local"
])

_IDENT = re.compile(r"[A-Za-z_][A-Za-z0-9_]*\Z")


def sanitize_name(text: str) -> str:
    """A C identifier made from ``text`` (a file name): every other character becomes ``_``, a leading digit
    gets a ``model_`` prefix, and so does a C keyword (``lenet5.pyrt`` -> ``lenet5_pyrt``)."""
    name = re.sub(r"[^A-Za-z0-9_]", "_", text) or "model"
    if name[0].isdigit() or name in _C_KEYWORDS:
        name = "model_" + name
    return name


def check_name(name: str) -> str:
    """``name`` if it is a usable C identifier; a ValueError saying why otherwise."""
    if not _IDENT.match(name):
        raise ValueError(f"--name {name!r} is not a C identifier (letters, digits and _, not starting with a digit)")
    if name in _C_KEYWORDS:
        raise ValueError(f"--name {name!r} is a C keyword")
    return name


def _describe(model) -> str:
    """The model's inputs and outputs on one line, as ``pyruntime inspect`` names them."""
    def one(t: dict) -> str:
        return f"{t['name']} {tuple(t['shape'])} {t['dtype']}".replace("None", "batch")

    return (f"inputs: {', '.join(one(t) for t in model.inputs)}; "
            f"outputs: {', '.join(one(t) for t in model.outputs)}")


def header_text(data: bytes, name: str, *, source: str = "<bytes>", bytes_per_line: int = 16) -> str:
    """The header for the model bytes ``data`` with array ``name``; a ValueError (FormatError) when ``data``
    is not a loadable .pyrt model."""
    from . import load
    from .convert.sources import PYRT_MAGIC

    check_name(name)
    if not data.startswith(PYRT_MAGIC):
        raise ValueError(f"{source} is not a .pyrt model (its first bytes are not the pyruntime magic)")
    model = load(bytes(data))  # validates: checksums, sizes, every field
    guard = f"{name.upper()}_H_"
    align = "PYRT_EXPORT_C_ALIGN16"
    lines = [
        f"/* {name}: the pyruntime model {Path(source).name}, byte for byte ({len(data)} bytes).",
        f" * SHA-256 {hashlib.sha256(data).hexdigest()}",
        f" * {_describe(model)}",
        " * Written by `pyruntime export-c`; load it with pyrt_micro_load (pyruntime_micro.h) or",
        " * pyrt_model_load_buffer (pyruntime.h). The array is 16-byte aligned where the compiler allows. */",
        f"#ifndef {guard}",
        f"#define {guard}",
        "",
        "#include <stddef.h>",
        "",
        f"#ifndef {align}",
        "#if defined(__GNUC__) || defined(__clang__)",
        f"#define {align} __attribute__((aligned(16)))",
        f"#define {align}_PREFIX",
        "#elif defined(_MSC_VER)",
        f"#define {align}",
        f"#define {align}_PREFIX __declspec(align(16))",
        "#elif defined(__STDC_VERSION__) && __STDC_VERSION__ >= 201112L",
        f"#define {align}",
        f"#define {align}_PREFIX _Alignas(16)",
        "#else /* no portable way in C99: the array keeps the compiler's alignment for unsigned char */",
        f"#define {align}",
        f"#define {align}_PREFIX",
        "#endif",
        "#endif",
        "",
        f"static const {align}_PREFIX unsigned char {name}[{len(data)}] {align} = {{",
    ]
    for i in range(0, len(data), bytes_per_line):
        lines.append("  " + ",".join(f"0x{b:02x}" for b in data[i:i + bytes_per_line]) + ",")
    lines += [
        "};",
        f"static const size_t {name}_len = {len(data)};",
        "",
        f"#endif /* {guard} */",
        "",
    ]
    return "\n".join(lines)


def export_c(path: str | Path, name: str | None = None) -> str:
    """The header for the .pyrt file at ``path``; ``name`` defaults to the file name, sanitized."""
    from .convert.sources import sniff

    p = Path(path)
    kind = sniff(p)
    if kind != "pyrt":
        if kind == "unknown":
            raise ValueError(f"{p} is not a .pyrt model (it does not start with the .pyrt magic bytes)")
        raise ValueError(f"{p} is {'an' if kind[0] in 'aeiou' else 'a'} {kind} file, not a .pyrt model"
                         + ("" if kind in ("npy", "npz") else ": convert it first (pyruntime convert)"))
    return header_text(p.read_bytes(), sanitize_name(p.name) if name is None else name, source=str(p))
