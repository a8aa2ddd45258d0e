"""Tables of bench/test_binary.py's JSON: per (K, batch) group the median of every member, the ratio of each
peer's median to each pyruntime member's (> 1: pyruntime is faster), pyruntime's binary multiply-accumulates
per second and their fraction of the peak popcount throughput, and the aim (>= 20x numpy fp32 at its default
thread count, batch 64, K >= 1024, pyruntime on 1 thread). The same for bench/test_binary_conv.py's binary
convolutions (torch fp32 conv and LCE as peers), when the JSON holds them.

    python bench/binary_report.py binary.json [bconv.json ...] [-o binary.md]
"""

from __future__ import annotations

import json
from collections import defaultdict

PEERS = ["numpy-fp32-1t", "numpy-fp32-default", "torch-fp32", "lce-default", "lce-indirect-bgemm"]
RATIO_PEERS = ["numpy-fp32-1t", "numpy-fp32-default", "torch-fp32", "lce"]  # lce: the faster LCE member
ISA_ORDER = ["avx512", "avx2", "neon", "ref"]
# Peak binary MACs per cycle of one core: one 512-bit vpopcntq per cycle (VPOPCNTDQ; on Intel it issues on
# one port, throughput 1 per cycle), one bit per MAC. The XOR and the accumulation are not counted.
BITS_PER_CYCLE = 512
AIM = 20.0
XNOR_NET = 58.0


def load(path: str, kind: str = "binary") -> tuple[dict[str, dict[str, dict]], dict]:
    """The groups of benchmarks whose extra_info kind is `kind` ("binary": test_binary.py, "bconv":
    test_binary_conv.py), and the machine info."""
    with open(path) as f:
        data = json.load(f)
    groups: dict[str, dict[str, dict]] = defaultdict(dict)
    for b in data["benchmarks"]:
        e = b["extra_info"]
        if e.get("kind") != kind:
            continue
        # A worker-run LCE member times inner_calls calls per round.
        groups[b["group"]][e["method"]] = {"median": b["stats"]["median"] / e.get("inner_calls", 1), **e}
    return groups, data.get("machine_info", {})


def _pyrt_order(name: str) -> tuple[int, int]:
    kind, isa = name.split("-")[1], name.rsplit("-", 1)[1]
    return (0 if kind == "xnor" else 1, ISA_ORDER.index(isa) if isa in ISA_ORDER else 9)


def _us(m: dict | None) -> str:
    return f"{m['median'] * 1e6:.1f}" if m else "-"




def ratio_cells(m, ratio_peers, g, lce) -> list[str]:
    """Peer median / this member's median per peer ("lce": the faster LCE member), "-" where a peer is absent."""
    cells = []
    for p in ratio_peers:
        q = lce if p == "lce" else g.get(p)
        cells.append(f"{q['median'] / m['median']:.1f}x" if q else "-")
    return cells

def peer_table(candidates, names, groups) -> tuple[list[str], list[str]]:
    """The peers present among `candidates`, and the markdown table of their medians per group."""
    peers = [p for p in candidates if any(p in g for g in groups.values())]
    head = ["group"] + [f"{p} (us)" for p in peers]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    lines += ["| " + " | ".join([n] + [_us(groups[n].get(p)) for p in peers]) + " |" for n in names]
    return peers, lines + [""]

def _key(g: dict[str, dict]) -> tuple[int, int]:
    m = next(iter(g.values()))
    return m["K"], m["batch"]


def report(groups: dict[str, dict[str, dict]], machine: dict) -> str:
    if not groups:
        return "no benchmarks of bench/test_binary.py in this JSON"
    names = sorted(groups, key=lambda n: _key(groups[n]))
    rows = [m for g in groups.values() for m in g.values()]
    mhz, src = rows[0]["clock_mhz"], rows[0]["clock_source"]
    peak = BITS_PER_CYCLE * mhz * 1e6  # binary MACs per second, one core
    lce_how = next((m["lce"] for m in rows if m.get("lce")), "")
    threads = sorted({m["threads"] for m in rows if m["method"] == "numpy-fp32-default"})
    kernels = sorted({f"{m['isa']} -> {m['kernel']}" for m in rows if m["isa"]})
    intro = (f"Peak assumed: {BITS_PER_CYCLE} binary MACs per cycle per core (one 512-bit vpopcntq a cycle) "
             f"x {mhz:.0f} MHz ({src}) = {peak / 1e9:.0f} G binary MACs/s on 1 thread; the XOR, the "
             "accumulation and the loads are not counted, so no kernel reaches it. The same peak is used for "
             "the avx2 and ref kernels (no vector popcount there). A binary MAC is one +-1 x +-1 product "
             "added (K * rows * batch per call); XNOR-Net counts 2 bit operations (xnor, popcount) per MAC.")
    setup = (f"Threads: 1 for every member but numpy-fp32-default ({'/'.join(map(str, threads)) or '?'}: "
             f"numpy's default). {machine.get('cpu_count', '?')} CPUs; load average at start / end "
             f"{_load(machine.get('loadavg_start'))} / {_load(machine.get('loadavg_end'))}. "
             f"LCE: {lce_how or 'not run (skipped)'}. Kernels: {', '.join(kernels)}.")
    out = ["### Binary layers (K x K, XNOR-popcount)", "", intro, setup, ""]

    # The peers' medians.
    peers, table = peer_table(PEERS, names, groups)
    out += table

    # pyruntime's members and the ratios (peer median / pyrt median; lce: the faster LCE member).
    has_lce = any(p.startswith("lce") for p in peers)
    ratio_peers = [p for p in RATIO_PEERS if p in peers or (p == "lce" and has_lce)]
    head = ["group", "pyrt member", "median (us)"] + [f"{p} / pyrt" for p in ratio_peers]
    head += ["G bMAC/s", "of peak"]
    out += ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for n in names:
        g = groups[n]
        lce = min((m for k, m in g.items() if k.startswith("lce")), key=lambda m: m["median"], default=None)
        for name in sorted((k for k in g if k.startswith("pyrt")), key=_pyrt_order):
            m = g[name]
            row = [n, name, _us(m)] + ratio_cells(m, ratio_peers, g, lce)
            rate = m["bmacs"] / m["median"]
            row += [f"{rate / 1e9:.0f}", f"{rate / peak:.0%}" if peak else "-"]
            out.append("| " + " | ".join(row) + " |")
    out += ["", aims(groups, names)]
    return "\n".join(out)


def _load(v) -> str:
    return f"{v[0]:.2f}" if v else "?"


def aims(groups: dict[str, dict[str, dict]], names: list[str]) -> str:
    lines = [(f"Aim: >= {AIM:.0f}x numpy fp32 at its default thread count, batch 64, K >= 1024, pyruntime "
              f"on 1 thread (XNOR-Net's theoretical figure: {XNOR_NET:.0f}x)."), "",
             "| group | pyrt member | numpy-fp32-default / pyrt | numpy-fp32-1t / pyrt | met |",
             "|---|---|---|---|---|"]
    verdict = []
    for n in names:
        g = groups[n]
        any_m = next(iter(g.values()))
        if any_m["batch"] != 64 or any_m["K"] < 1024 or "numpy-fp32-default" not in g:
            continue
        members = [k for k in g if k.startswith("pyrt") and not k.endswith("-ref")]
        for name in sorted(members, key=_pyrt_order):
            r = g["numpy-fp32-default"]["median"] / g[name]["median"]
            r1 = g["numpy-fp32-1t"]["median"] / g[name]["median"] if "numpy-fp32-1t" in g else float("nan")
            ok = r >= AIM
            verdict.append((name, ok))
            lines.append(f"| {n} | {name} | {r:.1f}x | {r1:.1f}x | {'met' if ok else 'NOT met'} |")
    if verdict:
        per = defaultdict(list)
        for name, ok in verdict:
            per[name].append(ok)
        lines += ["", "Aim " + "; ".join(f"{'met' if all(v) else 'NOT met'} by {k}" for k, v in per.items())
                  + "."]
    return "\n".join(lines)


CONV_PEERS = ["torch-fp32", "lce-default", "lce-indirect-bgemm"]


def _conv_key(g: dict[str, dict]) -> tuple[int, int]:
    m = next(iter(g.values()))
    return m["C"], m["batch"]  # the ResNet order: 64 channels at 56x56 first


def conv_report(groups: dict[str, dict[str, dict]], machine: dict) -> str:
    """bench/test_binary_conv.py's groups: the peers' medians, each pyruntime member's ratios (torch fp32
    conv and the faster LCE member over it), G binary MACs/s and the fraction of the peak, and how much of
    pyrt-bconv the XNOR GEMM alone (pyrt-gemm, same patches, same ISA) takes."""
    names = sorted(groups, key=lambda n: _conv_key(groups[n]))
    rows = [m for g in groups.values() for m in g.values()]
    mhz, src = rows[0]["clock_mhz"], rows[0]["clock_source"]
    peak = BITS_PER_CYCLE * mhz * 1e6
    lce_how = next((m["lce"] for m in rows if m.get("lce")), "")
    kernels = sorted({f"{m['isa']} -> {m['kernel']}" for m in rows if m["isa"]})
    m0 = rows[0]
    out = ["### Binary convolutions (3x3, stride 1, padding 1, XNOR-popcount)", "",
           (f"A binary MAC: O * C * kh * kw * OH * OW * batch per call; peak {BITS_PER_CYCLE} binary MACs per "
            f"cycle x {mhz:.0f} MHz ({src}) = {peak / 1e9:.0f} G/s on 1 thread, as for the binary layers. "
            "pyrt-bconv runs sign -> bconv2d from the f32 NCHW input (binarizing, patches, XNOR GEMM, f32 "
            "[O, OH, OW] epilogue); pyrt-gemm is the XNOR GEMM alone over patches built beforehand (not a "
            "convolution: a lower bound); torch-fp32 is F.conv2d on the +-1 tensors; LCE runs LceQuantize -> "
            "LceBconv2d (SAME, zero padding) from the f32 NHWC input."),
           (f"Threads: 1 for every member ({m0['kh']}x{m0['kw']} kernels). {machine.get('cpu_count', '?')} "
            f"CPUs; load average at start / end {_load(machine.get('loadavg_start'))} / "
            f"{_load(machine.get('loadavg_end'))}. LCE: {lce_how or 'not run (skipped)'}. Kernels: "
            f"{', '.join(kernels)}."), ""]
    peers, table = peer_table(CONV_PEERS, names, groups)
    out += table

    has_lce = any(p.startswith("lce") for p in peers)
    ratio_peers = ["torch-fp32"] * ("torch-fp32" in peers) + ["lce"] * has_lce
    head = ["group", "pyrt member", "median (us)"] + [f"{p} / pyrt" for p in ratio_peers]
    head += ["G bMAC/s", "of peak", "gemm alone / pyrt"]
    out += ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    order = {"bconv": 0, "gemm": 1}
    for n in names:
        g = groups[n]
        lce = min((m for k, m in g.items() if k.startswith("lce")), key=lambda m: m["median"], default=None)
        members = sorted((k for k in g if k.startswith("pyrt")),
                         key=lambda k: (order.get(k.split("-")[1], 9), _pyrt_order(k)[1]))
        for name in members:
            m = g[name]
            row = [n, name, _us(m)] + ratio_cells(m, ratio_peers, g, lce)
            rate = m["bmacs"] / m["median"]
            gemm = g.get(f"pyrt-gemm-{m['isa']}") if name.startswith("pyrt-bconv") else None
            row += [f"{rate / 1e9:.0f}", f"{rate / peak:.0%}" if peak else "-",
                    f"{gemm['median'] / m['median']:.0%}" if gemm else "-"]
            out.append("| " + " | ".join(row) + " |")
    return "\n".join(out)


def main() -> int:
    from report_cli import report_main

    def build(paths) -> str:
        parts = []
        for path in paths:
            binary, conv = load(path, "binary"), load(path, "bconv")
            if binary[0]:
                parts.append(report(*binary))
            if conv[0]:
                parts.append(conv_report(*conv))
        return "\n\n".join(parts) or "no benchmarks of bench/test_binary.py or bench/test_binary_conv.py in the JSON"

    return report_main(__doc__, build, "pytest-benchmark JSON of test_binary.py and / or test_binary_conv.py",
                       many=True)


if __name__ == "__main__":
    raise SystemExit(main())
