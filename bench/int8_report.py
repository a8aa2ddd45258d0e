"""Tables of bench/test_int8.py's and bench/test_int8_conv.py's JSON: per (shape, sparsity, batch), the median
time of every method, the ratio of each peer's time to pyruntime's, and pyruntime's int8 operations per second
(2 per executed multiply-add; dense-equivalent for the sparse cases in brackets), plus the aims of the int8
issues as met / not met. Each section is printed when its benchmarks are in the JSON.

    python bench/int8_report.py int8.json [-o int8.md]
    python bench/int8_report.py int8conv.json
"""
from __future__ import annotations

import json
from collections import defaultdict

PEERS = ["numpy-fp32", "torch-fp32", "torch-int8-dynamic", "ort-int8-dynamic", "openvino-int8"]
CONV_PEERS = ["torch-fp32", "ort-fp32", "ort-int8-static", "openvino-fp32", "openvino-int8"]
# Peers the best pyruntime int8 conv is divided by, and those of the conv aim (faster than both).
CONV_RATIO_PEERS = ["torch-fp32", "ort-int8-static", "ort-fp32", "openvino-int8"]
CONV_AIM_PEERS = {"torch-fp32": "torch fp32 conv", "ort-int8-static": "ONNX Runtime's QLinearConv"}
ISA_ORDER = ["amx", "avx512vnni", "avx512", "avx2", "neon_dot", "neon"]


def load(path: str) -> dict[str, dict[str, dict]]:
    with open(path) as f:
        data = json.load(f)
    groups: dict[str, dict[str, dict]] = defaultdict(dict)
    for b in data["benchmarks"]:
        e = b["extra_info"]
        if "method" not in e:  # not an int8 benchmark
            continue
        name = e["method"] + (f"-{e['isa']}" if e.get("isa") else "")
        groups[b["group"]][name] = {"median": b["stats"]["median"], **e}
    return groups


def report(groups: dict[str, dict[str, dict]]) -> str:
    linear = {n: g for n, g in groups.items()
              if n.startswith("int8-") and not any(m.get("kind") for m in g.values())}
    conv = {n: g for n, g in groups.items() if any(m.get("kind") == "int8_conv" for m in g.values())}
    parts = [linear_report(linear)] if linear else []
    if conv:
        parts.append(conv_report(conv))
    return "\n\n".join(parts) or "no benchmarks of bench/test_int8.py or bench/test_int8_conv.py in this JSON"


def linear_report(groups: dict[str, dict[str, dict]]) -> str:
    out = []
    isas = sorted({m["isa"] for g in groups.values() for m in g.values() if m["isa"]}, key=ISA_ORDER.index)
    peers = [p for p in PEERS if p != "openvino-int8" or any(p in g for g in groups.values())]
    head = ["case", "pyrt encoding"] + [f"{p} (us)" for p in peers] + [f"pyrt {i} (us)" for i in isas]
    head += [f"{p} / pyrt {isas[0]}" for p in peers] + [f"GOPS {i}" for i in isas]
    out.append("| " + " | ".join(head) + " |")
    out.append("|" + "---|" * len(head))
    for name in sorted(groups, key=lambda g: (int(g.split("-")[1]), g)):
        g = groups[name]
        pyrt = {i: g.get(f"pyrt-int8-{i}") for i in isas}
        best = pyrt[isas[0]]
        row = [name.removeprefix("int8-"), best["encoding"] if best else "-"]
        row += [f"{g[p]['median'] * 1e6:.1f}" if p in g else "-" for p in peers]
        row += [f"{m['median'] * 1e6:.1f}" if m else "-" for m in pyrt.values()]
        row += [f"{g[p]['median'] / best['median']:.2f}x" if p in g and best else "-" for p in peers]
        for m in pyrt.values():
            if not m:
                row.append("-")
                continue
            gops = 2 * m["macs"] / m["median"] / 1e9
            dense = 2 * m["dense_macs"] / m["median"] / 1e9
            row.append(f"{gops:.0f}" + (f" ({dense:.0f})" if m["macs"] != m["dense_macs"] else ""))
        out.append("| " + " | ".join(row) + " |")
    return "\n".join(out) + "\n\n" + aims(groups, isas)


def aims(groups: dict[str, dict[str, dict]], isas: list[str]) -> str:
    def ratio(name: str, peer: str, isa: str) -> float | None:
        g = groups.get(name, {})
        p, m = g.get(peer), g.get(f"pyrt-int8-{isa}")
        return p["median"] / m["median"] if p and m else None

    lines = ["| aim | case | measured | met |", "|---|---|---|---|"]
    checks = []
    for s in ("1024", "4096"):
        checks += [(f"dense int8, batch 1, >= torch dynamic int8 ({isa})", f"int8-{s}-s0.00-b1", "torch-int8-dynamic",
                    isa, 1.0) for isa in isas]
        checks += [(f"dense int8, batch 1, > ONNX Runtime ({isa})", f"int8-{s}-s0.00-b1", "ort-int8-dynamic", isa,
                    1.0) for isa in isas]
        checks += [(f"dense int8, batch 64, >= 0.8x torch ({isa})", f"int8-{s}-s0.00-b64", "torch-int8-dynamic", isa,
                    0.8) for isa in isas]
        checks += [(f"90% sparse int8, batch 1, >= 4x torch dense int8 ({isa})", f"int8-{s}-s0.90-b1",
                    "torch-int8-dynamic", isa, 4.0) for isa in isas]
    for what, name, peer, isa, want in checks:
        r = ratio(name, peer, isa)
        if r is not None:
            lines.append(f"| {what} | {name.removeprefix('int8-')} | {r:.2f}x | {'met' if r >= want else 'NOT met'} |")
    return "\n".join(lines)


def _gops(m: dict) -> str:
    """int8 operations per second (2 per multiply-add executed), the dense-equivalent rate in brackets."""
    gops = 2 * m["macs"] / m["median"] / 1e9
    dense = 2 * m["dense_macs"] / m["median"] / 1e9
    return f"{gops:.1f}" + (f" ({dense:.1f})" if m["macs"] != m["dense_macs"] else "")


def _conv_key(g: dict[str, dict]) -> tuple:
    m = next(iter(g.values()))
    return m["layer"], m["sparsity"], m["batch"]


def _best_pyrt(g: dict[str, dict], isa: str | None = None) -> tuple[str, dict] | None:
    """The fastest pyruntime int8 member of a conv group (at `isa`, or at any): (its name, its row)."""
    cands = [(n, m) for n, m in g.items() if m["peer"] == "pyrt" and (isa is None or m["isa"] == isa)]
    return min(cands, key=lambda nm: nm[1]["median"]) if cands else None


def conv_report(groups: dict[str, dict[str, dict]]) -> str:
    """int8 convolutions (bench/test_int8_conv.py): the peers, the best pyruntime member and its ratios, then
    every pyruntime member, then the aim: int8 conv faster than torch fp32 and ONNX Runtime's QLinearConv."""
    names = sorted(groups, key=lambda n: _conv_key(groups[n]))
    isas = sorted({m["isa"] for g in groups.values() for m in g.values() if m["isa"]}, key=ISA_ORDER.index)
    modes = sorted({m["method"] for g in groups.values() for m in g.values() if m["peer"] == "pyrt"})
    out = ["### int8 convolutions (1 thread)", "",
           ("Ratios: peer median / the fastest pyruntime int8 member's median (> 1: pyruntime is faster). "
            "GOPS: int8 operations per second of that member (dense-equivalent in brackets for "
            "csr+int8)."), ""]
    head = ["case", "conv", "pyrt encoding"] + [f"{p} (us)" for p in CONV_PEERS]
    head += ["best pyrt (us)", "best pyrt"]
    head += [f"{p} / best" for p in CONV_RATIO_PEERS] + ["GOPS best"]
    out += ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for name in names:
        g = groups[name]
        best = _best_pyrt(g)
        any_m = next(iter(g.values()))
        row = [name.removeprefix("int8conv-"), any_m["description"], best[1]["encoding"] if best else "-"]
        row += [f"{g[p]['median'] * 1e6:.1f}" if p in g else "-" for p in CONV_PEERS]
        if best:
            _, bm = best
            row += [f"{bm['median'] * 1e6:.1f}", bm["label"].removeprefix("pyrt-int8-")]
            row += [f"{g[p]['median'] / bm['median']:.2f}x" if p in g else "-" for p in CONV_RATIO_PEERS]
            row.append(_gops(bm))
        else:
            row += ["-"] * (2 + len(CONV_RATIO_PEERS) + 1)
        out.append("| " + " | ".join(row) + " |")

    cols = [(mode, isa) for mode in modes for isa in isas]
    out += ["", "Every pyruntime int8 conv member: median (us) / GOPS (dense-equivalent in brackets).", ""]
    head = ["case"] + [f"{mode.removeprefix('pyrt-int8-')} {isa}" for mode, isa in cols]
    out += ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for name in names:
        g = groups[name]
        row = [name.removeprefix("int8conv-")]
        for mode, isa in cols:
            m = g.get(f"{mode}-{isa}")
            row.append(f"{m['median'] * 1e6:.1f} / {_gops(m)}" if m else "-")
        out.append("| " + " | ".join(row) + " |")
    return "\n".join(out) + "\n\n" + conv_aims(groups, names, isas)


def conv_aims(groups: dict[str, dict[str, dict]], names: list[str], isas: list[str]) -> str:
    """Per ISA level and peer: in how many groups the fastest pyruntime int8 member at that level (dynamic or
    static) beats the peer, and the smallest ratio."""
    lines = [("Aim: the int8 conv layers faster than torch fp32 conv and than ONNX Runtime's QLinearConv "
             "(the faster pyruntime int8 member at each ISA level, every group)."), "",
             "| aim | ISA | groups faster | slowest ratio (case) | met |", "|---|---|---|---|---|"]
    verdict: dict[str, bool] = {}
    for isa in isas:
        for peer, what in CONV_AIM_PEERS.items():
            ratios = []
            for name in names:
                g, best = groups[name], _best_pyrt(groups[name], isa)
                if best and peer in g:
                    ratios.append((g[peer]["median"] / best[1]["median"], name.removeprefix("int8conv-")))
            if not ratios:
                continue
            wins = sum(r > 1.0 for r, _ in ratios)
            worst = min(ratios)
            met = wins == len(ratios)
            verdict[isa] = verdict.get(isa, True) and met
            lines.append(f"| faster than {what} | {isa} | {wins} / {len(ratios)} | {worst[0]:.2f}x "
                         f"({worst[1]}) | {'met' if met else 'NOT met'} |")
    if verdict:
        lines += ["", "Aim " + "; ".join(f"{'met' if ok else 'NOT met'} at {isa}"
                                         for isa, ok in verdict.items()) + "."]
    return "\n".join(lines)


def main() -> int:
    from report_cli import report_main

    return report_main(__doc__, lambda paths: report(load(paths[0])), "pytest-benchmark JSON of the int8 suites")


if __name__ == "__main__":
    raise SystemExit(main())
