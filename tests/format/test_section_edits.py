"""Section-level attacks with valid checksums (what an outside attack tried beyond byte flips): sections
duplicated, removed, swapped and spliced in from another model, and shape fields forged to huge values,
every checksum recomputed so that the edits reach the deepest checks. Each edited file must be refused by
both readers (the C++ one and the spec reader written from docs/FORMAT.md) or accepted by both as the
same model, and a model that loads must run, agreeing with the spec reader's forward pass.
"""

from __future__ import annotations

import struct

import numpy as np
import pyrt_spec as spec
import pytest
import spec_reader as sr

import pyruntime
from pyruntime import _core

# 2^20 work per sample is plenty for these small models: a forged shape that asks for more is not run
# (it loads, which is the point; running it would only take long).
MAX_RUN_WORK = 1 << 22


def sections_of(data: bytes) -> list[tuple[int, int, bytes]]:
    return [(e.type, e.flags, spec.payload(data, e)) for e in spec.entries(data)]


def version_of(data: bytes) -> int:
    return struct.unpack_from("<I", data, 8)[0]


def section_edits(a: bytes, b: bytes) -> list[tuple[str, bytes]]:
    """Every duplication, removal, adjacent swap and splice (b's section i in place of a's, and b's
    sections appended), and tensor headers forged to huge dims, all with valid checksums."""
    sa, sb = sections_of(a), sections_of(b)
    v = max(version_of(a), version_of(b))
    out: list[tuple[str, bytes]] = []
    for i in range(len(sa)):
        out.append((f"duplicate {i}", spec.build_file(sa[: i + 1] + sa[i:], version=v)))
        out.append((f"remove {i}", spec.build_file(sa[:i] + sa[i + 1 :], version=v)))
        if i + 1 < len(sa):
            out.append((f"swap {i},{i + 1}", spec.build_file(sa[:i] + [sa[i + 1], sa[i]] + sa[i + 2 :], version=v)))
        for j in range(len(sb)):
            out.append((f"splice b{j} at {i}", spec.build_file(sa[:i] + [sb[j]] + sa[i + 1 :], version=v)))
    out.append(("append b", spec.build_file(sa + sb, version=v)))
    out.append(("graph of b, tensors of a", spec.build_file(
        [s for s in sb if s[0] == 1] + [s for s in sa if s[0] != 1], version=v)))
    for i, (typ, flags, pl) in enumerate(sa):
        if typ != 2:  # tensor sections: u32 encoding, u32 rank, u32 dims[4]
            continue
        rank = struct.unpack_from("<I", pl, 4)[0]
        for d in range(min(rank, 4)):
            for huge in (1 << 20, 1 << 31, 0xFFFFFFFF):
                forged = bytearray(pl)
                struct.pack_into("<I", forged, 8 + 4 * d, huge)
                out.append((f"tensor section {i} dim {d} = {huge}",
                            spec.build_file(sa[:i] + [(typ, flags, bytes(forged))] + sa[i + 1 :], version=v)))
    return out


def check_edit(name: str, data: bytes) -> str:
    """'refused' or 'loaded'; raises AssertionError on any disagreement or wrong result."""
    try:
        cpp = _core.read_model(data)
    except pyruntime.FormatError as e:
        assert str(e)
        with pytest.raises(sr.SpecError):
            sr.read_file(data)
        with pytest.raises(pyruntime.FormatError):
            pyruntime.load(data)
        return "refused"
    model = sr.read_file(data)  # accepted by the C++ reader: the spec reader must accept it too
    assert [n.op for n in model.nodes] == [n["op"] for n in cpp["nodes"]], name
    m = pyruntime.load(data)
    if m.work <= MAX_RUN_WORK:
        x = np.random.default_rng(0).standard_normal((2, *model.input_shape)).astype(np.float32)
        want = sr.run(model, x)
        got = m.run(x)
        np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-4 * max(1.0, float(np.abs(want).max())),
                                   err_msg=name)
    return "loaded"


@pytest.fixture(scope="module")
def pair(helpers) -> tuple[bytes, bytes]:
    rng = np.random.default_rng(77)
    a = helpers.mlp(rng, [12, 10, 6], ["csr+codebook", "dense"], metadata='{"m": "a"}')
    b = helpers.mlp(rng, [12, 10, 6], ["codebook", "csr"], final=None)
    return _core.write_model(a), _core.write_model(b)


def test_section_edits_between_two_mlps(pair):
    outcomes = {name: check_edit(name, data) for name, data in section_edits(*pair)}
    loaded = [n for n, o in outcomes.items() if o == "loaded"]
    # splicing a same-shaped tensor of the other model, or duplicating the metadata, is a valid model
    assert any(n.startswith("splice") for n in loaded), outcomes
    assert all(outcomes[n] == "refused" for n in outcomes if n.startswith("tensor section") and "= 4294967295" in n)


def test_section_edits_between_a_conv_net_and_an_mlp(helpers, every_encoding_bytes):
    golden = (pytest.importorskip("pathlib").Path(__file__).resolve().parents[1] / "data" / "golden_v2.pyrt")
    conv = golden.read_bytes()
    outcomes = {name: check_edit(name, data) for name, data in section_edits(conv, every_encoding_bytes)}
    assert "refused" in outcomes.values() and "loaded" in outcomes.values()
