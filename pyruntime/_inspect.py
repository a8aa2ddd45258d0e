"""``pyruntime inspect``: what a .pyrt file holds, and for a bad file, what is wrong with it.

The verdict is always the C++ reader's (``_core.read_model``): a file is valid exactly when the runtime
would load it. Around that verdict this module walks the header and the section table leniently, as far
as they can be read, and checks every checksum on its own, so that a damaged file still shows which
parts are intact, which are not, and a plain-words reason (truncated download, a different kind of
file, a newer format version...). The layout it reads is docs/FORMAT.md, sections 1.1 and 1.2.
"""
from __future__ import annotations

import struct
import zlib
from dataclasses import dataclass, field
from typing import Any

MAGIC = b"PYRT\r\n\x1a\n"
HEADER_SIZE = 64
ENTRY_SIZE = 32
SECTION_NAMES = {1: "graph", 2: "tensor", 3: "metadata"}

# Leading bytes of files people mistake for model files.
OTHER_FORMATS = (
    (b"PK\x03\x04", ("a ZIP archive (a PyTorch torch.save() checkpoint is one): convert it with "
                     "`pyruntime convert` first")),
    (b"\x93NUMPY", "a NumPy .npy array"),
    (b"\x89HDF\r\n\x1a\n", "an HDF5 file (Keras .h5?)"),
    (b"\x1f\x8b", "a gzip-compressed file: decompress it first"),
    (b"\x80\x02", "a Python pickle"),
    (b"\x80\x04", "a Python pickle"),
    (b"\x80\x05", "a Python pickle"),
    (b"\x7fELF", "an executable or shared library"),
    (b"TFL3", "a TensorFlow Lite model"),
)


@dataclass
class Section:
    index: int
    type: int
    flags: int
    offset: int
    size: int
    crc: int
    status: str  # "ok", "checksum mismatch", "out of bounds", "misaligned"

    @property
    def type_name(self) -> str:
        return SECTION_NAMES.get(self.type, f"unknown({self.type})")


@dataclass
class Report:
    path: str
    size: int
    magic_ok: bool = False
    version: int | None = None
    flags: int | None = None
    declared_size: int | None = None
    section_count: int | None = None
    header_crc_ok: bool | None = None
    table_crc_ok: bool | None = None
    sections: list[Section] = field(default_factory=list)
    error: str | None = None                   # the C++ reader's message; None for a valid file
    reasons: list[str] = field(default_factory=list)  # plain-words explanations for a bad file
    model: dict[str, Any] | None = None        # _core.read_model's dict for a valid file
    cost: str | None = None                    # Model.cost_text() of a valid file: memory and work of a run

    @property
    def valid(self) -> bool:
        return self.error is None


def _crc(b: bytes) -> int:
    return zlib.crc32(b) & 0xFFFFFFFF


def _walk(data: bytes, r: Report) -> None:
    """Fills the header and table fields of `r` from whatever of them is present."""
    r.magic_ok = data[:8] == MAGIC
    if len(data) < HEADER_SIZE or not r.magic_ok:
        return
    r.version, r.flags, r.declared_size, r.section_count, table_crc = struct.unpack_from("<IIQII", data, 8)
    (header_crc,) = struct.unpack_from("<I", data, 60)
    r.header_crc_ok = _crc(data[:60]) == header_crc
    table_end = HEADER_SIZE + ENTRY_SIZE * r.section_count
    if r.section_count > 65536 or table_end > len(data):
        return
    r.table_crc_ok = _crc(data[HEADER_SIZE:table_end]) == table_crc
    for i in range(r.section_count):
        typ, flags, off, size, crc, _ = struct.unpack_from("<IIQQII", data, HEADER_SIZE + i * ENTRY_SIZE)
        if off % 64:
            status = "misaligned"
        elif off > len(data) or size > len(data) - off:
            status = "out of bounds"
        else:
            status = "ok" if _crc(data[off:off + size]) == crc else "checksum mismatch"
        r.sections.append(Section(i, typ, flags, off, size, crc, status))


def _explain(data: bytes, r: Report) -> None:
    """Plain-words reasons for a file the reader refused, most likely cause first."""
    if len(data) == 0:
        r.reasons.append("the file is empty")
        return
    if not r.magic_ok:
        for prefix, what in OTHER_FORMATS:
            if data.startswith(prefix):
                r.reasons.append(f"this is not a pyruntime model but {what}")
                return
        if len(data) < 8 and MAGIC.startswith(data):
            r.reasons.append(f"only the first {len(data)} bytes of a model file are there: it was truncated")
            return
        r.reasons.append("this is not a pyruntime model file (it does not start with the .pyrt magic bytes)")
        return
    if len(data) < HEADER_SIZE:
        r.reasons.append(f"only {len(data)} bytes of the 64-byte header are there: the file was truncated")
        return
    if r.header_crc_ok is False:
        r.reasons.append("the header's checksum does not match: the first 64 bytes were damaged")
        return
    from . import _core

    if r.version is not None and r.version > _core.FORMAT_VERSION:
        r.reasons.append(f"the file was written for format version {r.version}, newer than this pyruntime "
                         f"reads (versions 1..{_core.FORMAT_VERSION}): upgrade pyruntime")
        return
    if r.declared_size is not None and r.declared_size != len(data):
        if r.declared_size > len(data):
            missing = r.declared_size - len(data)
            r.reasons.append(f"the file is {missing} bytes shorter than its header says ({r.declared_size}): it was "
                             "truncated, e.g. by an interrupted download or copy, or a full disk")
        else:
            r.reasons.append(f"{len(data) - r.declared_size} bytes follow the end of the model: something was "
                             "appended, or two files were concatenated")
        return
    if r.table_crc_ok is False:
        r.reasons.append("the section table's checksum does not match: the table was damaged")
        return
    bad = [s for s in r.sections if s.status != "ok"]
    for s in bad:
        where = f"section {s.index} ({s.type_name}, bytes {s.offset}..{s.offset + s.size})"
        if s.status == "checksum mismatch":
            r.reasons.append(f"{where}: its bytes changed after the file was written (storage or transfer "
                             "corruption); the other sections are intact" if len(bad) == 1 else
                             f"{where}: its bytes changed after the file was written")
        else:
            r.reasons.append(f"{where}: {s.status}")
    if not bad:
        r.reasons.append("every checksum matches, so the file was written this way: the writer produced an "
                         "inconsistent model (see the message above for the part that is wrong)")


def inspect_bytes(data: bytes, path: str = "<bytes>") -> Report:
    from . import FormatError, _core

    r = Report(path=path, size=len(data))
    _walk(data, r)
    try:
        r.model = _core.read_model(data)
    except FormatError as e:
        r.error = str(e)
        _explain(data, r)
        return r
    from ._model import Model

    # Loading builds the execution layouts (memory as the file's weights need) but runs nothing: the
    # arena and the work are figures, so a file that asks for gigabytes or hours is shown, not run.
    r.cost = Model(_core.Model.from_bytes(data)).cost_text()
    return r


def render(r: Report) -> str:
    """The text ``pyruntime inspect`` prints."""
    import numpy as np

    from ._report import format_table

    out = []
    if r.valid:
        assert r.model is not None
        out.append(f"{r.path}: pyruntime model, format version {r.version}, {r.size} bytes, all checksums OK")
    else:
        out.append(f"{r.path}: INVALID (FormatError): {r.error}")
        out += [f"  why: {reason}" for reason in r.reasons]
    if r.magic_ok and r.version is not None:
        out.append("\nheader:")
        hcrc = {True: "OK", False: "MISMATCH", None: "n/a"}
        out.append(f"  version {r.version}, flags 0x{r.flags:x}, size {r.declared_size} (actual {r.size}), "
                   f"{r.section_count} sections, header checksum {hcrc[r.header_crc_ok]}, "
                   f"table checksum {hcrc[r.table_crc_ok]}")
    if r.sections:
        out.append("\nsections:")
        rows = [[s.index, s.type_name, "required" if s.flags & 1 else "optional", s.offset, s.size,
                 f"{s.crc:08x}", s.status] for s in r.sections]
        out.append(format_table(["#", "type", "flags", "offset", "bytes", "crc32", "check"], rows))
    if r.model is None:
        return "\n".join(out)
    info = r.model
    out.append("\ntensors:")
    rows = []
    for i, t in enumerate(info["tensors"]):
        numel = int(np.prod(t["shape"]))
        nnz = len(t["colidx"]) if "colidx" in t else numel
        bits = t.get("index_bits", {"int8": 8, "csr+int8": 8, "binary": 1}.get(t["encoding"], 32))
        extra = f"gap_bits={t['gap_bits']}" if "gap_bits" in t else ""
        if "centroids" in t:
            extra = (extra + " " if extra else "") + f"k={len(t['centroids'])}"
        rows.append([i, t["name"], t["encoding"], "x".join(map(str, t["shape"])), nnz, bits, t["file_bytes"],
                     f"{numel * 4 / max(1, t['file_bytes']):.1f}x", extra])
    out.append(format_table(["#", "name", "encoding", "shape", "nonzeros", "bits", "bytes", "vs fp32", "coding"],
                            rows))
    inputs = info.get("inputs") or [{"shape": info["input_shape"], "type": "f32"}]
    if len(inputs) == 1 and inputs[0]["type"] == "f32":
        out.append(f"\ngraph: input {tuple(inputs[0]['shape'])}")
    else:
        out.append("\ngraph: " + ", ".join(f"v{k} = input {tuple(i['shape'])}" + (" i32" if i["type"] == "i32" else "")
                                           for k, i in enumerate(inputs)))
    for i, n in enumerate(info["nodes"]):
        args = [f"v{v}" for v in n["inputs"]] + [info["tensors"][t]["name"] for t in n["tensors"]]
        args += [f"{k}={v}" for k, v in n.get("attrs", {}).items()]
        out.append(f"  v{len(inputs) + i} = {n['op']}({', '.join(args)})")
    if info.get("outputs") and info["outputs"] != [len(inputs) + len(info["nodes"]) - 1]:
        out.append("  outputs: " + ", ".join(f"v{v}" for v in info["outputs"]))
    if info["metadata"]:
        out.append(f"\nmetadata: {info['metadata']}")
    if r.cost:
        out.append("\n" + r.cost)
    return "\n".join(out)
