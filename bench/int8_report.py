"""Tables of bench/test_int8.py's JSON: per (shape, sparsity, batch), the median time of every method, the
ratio of each peer's time to pyruntime's at each ISA level, and pyruntime's int8 operations per second
(2 per executed multiply-add; dense-equivalent for the sparse cases in brackets), plus the aims of the int8
issue as met / not met.

    python bench/int8_report.py int8.json [-o int8.md]
"""
from __future__ import annotations

import argparse
import json
from collections import defaultdict

PEERS = ["numpy-fp32", "torch-fp32", "torch-int8-dynamic", "ort-int8-dynamic"]


def load(path: str) -> dict[str, dict[str, dict]]:
    with open(path) as f:
        data = json.load(f)
    groups: dict[str, dict[str, dict]] = defaultdict(dict)
    for b in data["benchmarks"]:
        e = b["extra_info"]
        name = e["method"] + (f"-{e['isa']}" if e["isa"] else "")
        groups[b["group"]][name] = {"median": b["stats"]["median"], **e}
    return groups


def report(groups: dict[str, dict[str, dict]]) -> str:
    out = []
    isas = sorted({m["isa"] for g in groups.values() for m in g.values() if m["isa"]},
                  key=["avx512vnni", "avx512", "avx2"].index)
    head = ["case", "pyrt encoding"] + [f"{p} (us)" for p in PEERS] + [f"pyrt {i} (us)" for i in isas]
    head += [f"{p} / pyrt {isas[0]}" for p in PEERS] + [f"GOPS {i}" for i in isas]
    out.append("| " + " | ".join(head) + " |")
    out.append("|" + "---|" * len(head))
    for name in sorted(groups, key=lambda g: (int(g.split("-")[1]), g)):
        g = groups[name]
        pyrt = {i: g.get(f"pyrt-int8-{i}") for i in isas}
        best = pyrt[isas[0]]
        row = [name.removeprefix("int8-"), best["encoding"] if best else "-"]
        row += [f"{g[p]['median'] * 1e6:.1f}" if p in g else "-" for p in PEERS]
        row += [f"{m['median'] * 1e6:.1f}" if m else "-" for m in pyrt.values()]
        row += [f"{g[p]['median'] / best['median']:.2f}x" if p in g and best else "-" for p in PEERS]
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


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("json")
    ap.add_argument("-o", "--output")
    args = ap.parse_args()
    text = report(load(args.json))
    print(text)
    if args.output:
        with open(args.output, "w") as f:
            f.write(text + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
