"""Tables of bench/test_bert.py's JSON: BERT-base, sequence 128, batch 1. Per thread count, every member's median
and each pyruntime member's speed ratio against each peer; the file sizes against the fp32 checkpoint; the
pyruntime variants' compression and conversion; and the aim "the 90%-pruned model >= 3x faster than dense ONNX
Runtime fp32 on the same cores" as met / not met.

A ratio is the peer's median / the pyruntime member's median in the same group (> 1: pyruntime is faster).
pyruntime runs its dense or compressed model, the peers the dense fp32 one (the int8 peers their Linear layers
in int8).

    python bench/bert_report.py bert.json [-o bert.md]
"""

from __future__ import annotations

from typing import Any

from report_cli import load_groups

PYRT = ["pyrt-dense", "pyrt-s80-4bit", "pyrt-s90-4bit", "pyrt-s90-int8"]
PEERS = ["torch-fp32", "ort-fp32", "torch-dynamic-int8", "ort-dynamic-int8"]
MEMBERS = PYRT + PEERS
# (pyruntime member, peer, factor): the member at least `factor` times faster than the peer, at every thread count
AIMS = [("pyrt-s90-4bit", "ort-fp32", 3.0), ("pyrt-s90-int8", "ort-fp32", 3.0)]

Group = dict[str, dict[str, Any]]


def load(path: str) -> tuple[dict[str, Group], dict[str, Any]]:
    """Groups of BERT benchmarks (group name -> method -> median and extra_info) and the machine info."""
    return load_groups(path, "bert")


def _threads(g: Group) -> int:
    return int(next(iter(g.values()))["threads"])


def _ratio(g: Group, peer: str, member: str) -> float | None:
    p, r = g.get(peer), g.get(member)
    return p["median"] / r["median"] if p and r else None


def _fmt_ratio(r: float | None) -> str:
    return f"{r:.2f}x" if r is not None else "-"


def _ms(m: dict[str, Any] | None) -> str:
    return f"{m['median'] * 1e3:.1f}" if m else "-"


def _mb(n: Any) -> str:
    return "-" if n is None else f"{n / 1e6:.1f} MB"


def _isa(groups: dict[str, Group], machine: dict[str, Any]) -> str:
    for g in groups.values():
        for m in g.values():
            if m.get("isa"):
                return str(m["isa"])
    return str((machine.get("pyruntime") or {}).get("active_isa", "?"))


def machine_text(groups: dict[str, Group], machine: dict[str, Any]) -> str:
    cpu = machine.get("cpu") or {}
    peers = machine.get("peers") or {}
    text = (f"CPU: {cpu.get('brand_raw', '?')}, {machine.get('cpu_count', '?')} logical cores; pyruntime ISA "
            f"{_isa(groups, machine)}; torch {peers.get('torch', '?')}.")
    load_avg, cores = machine.get("loadavg_start"), machine.get("cpu_count") or 1
    if load_avg and max(load_avg[0], (machine.get("loadavg_end") or [0])[0]) > 0.5 * cores:
        text += (f"\n\n**Warning**: load average {load_avg[0]:.2f} at the start, "
                 f"{(machine.get('loadavg_end') or [0])[0]:.2f} at the end, on {cores} cores: other work on the "
                 "machine skews these numbers.")
    return text


def times_table(groups: dict[str, Group], names: list[str]) -> str:
    """One row per member, one column per thread count: median ms, and the max error against its reference."""
    head = ["member"] + [f"{_threads(groups[n])} thr (ms)" for n in names] + ["error", "vs torch fp32"]
    out = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for method in MEMBERS:
        ms = [groups[n].get(method) for n in names]
        any_m = next((m for m in ms if m), None)
        if any_m is None:
            out.append("| " + " | ".join([method] + ["not run"] * len(names) + ["-", "-"]) + " |")
            continue
        err = f"{any_m['error']:.2g} (tol {any_m['tol']:g})"
        out.append("| " + " | ".join([method] + [_ms(m) for m in ms] + [err, f"{any_m['error_vs_torch']:.2g}"])
                   + " |")
    return "\n".join(out)


def ratios_table(groups: dict[str, Group], names: list[str]) -> str:
    """Rows: pyruntime member x thread count; columns: each peer's median / the member's."""
    head = ["pyruntime member", "threads"] + [f"{p} / pyrt" for p in PEERS]
    out = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for member in PYRT:
        for n in names:
            g = groups[n]
            if member not in g:
                continue
            out.append("| " + " | ".join([member, str(_threads(g))] + [_fmt_ratio(_ratio(g, p, member))
                                                                         for p in PEERS]) + " |")
    return "\n".join(out)


def sizes_table(groups: dict[str, Group]) -> str:
    """Every member's model file against the fp32 checkpoint (every parameter as fp32)."""
    seen: dict[str, dict[str, Any]] = {}
    for g in groups.values():
        for method, m in g.items():
            seen.setdefault(method, m)
    if not seen:
        return "nothing ran"
    ckpt = next(iter(seen.values())).get("checkpoint_bytes")
    out = [f"fp32 checkpoint (every parameter x 4 bytes): {_mb(ckpt)}", "",
           "| member | file | smaller than the fp32 checkpoint by |", "|---|---|---|"]
    for method in MEMBERS:
        m = seen.get(method)
        if not m:
            continue
        b = m.get("model_bytes")
        out.append(f"| {method} | {_mb(b)} | {_fmt_ratio(ckpt / b if b and ckpt else None)} |")
    out.append("")
    out.append("(torch members: torch.save of the state_dict; ORT: the .onnx file; pyruntime: the .pyrt file.)")
    return "\n".join(out)


def variants_table(groups: dict[str, Group]) -> str:
    seen: dict[str, dict[str, Any]] = {}
    for g in groups.values():
        for method in PYRT:
            if method in g:
                seen.setdefault(method, g[method])
    if not seen:
        return "No pyruntime member ran (skipped: see the pytest output)."
    out = ["| variant | sparsity | bits | quantize | density | encodings (layers) | conversion (s) |",
           "|---|---|---|---|---|---|---|"]
    for v in PYRT:
        m = seen.get(v)
        if not m:
            continue
        enc = ", ".join(f"{k} {n}" for k, n in sorted((m.get("encodings") or {}).items()))
        conv = m.get("convert_seconds")
        conv_text = "-" if conv is None else f"{conv:.1f}" + (" (cached)" if m.get("cached") else "")
        dens = "-" if m.get("density") is None else f"{m['density']:.3f}"
        out.append(f"| {v} | {m.get('sparsity')} | {m.get('bits')} | {m.get('quantize')} | {dens} | {enc} | "
                   f"{conv_text} |")
    return "\n".join(out)


def aims_table(groups: dict[str, Group], names: list[str]) -> str:
    out = ["| aim | threads | measured | met |", "|---|---|---|---|"]
    for member, peer, want in AIMS:
        what = f"90%-pruned model ({member}) >= {want:g}x dense {peer} on the same cores"
        for n in names:
            r = _ratio(groups[n], peer, member)
            t = _threads(groups[n])
            if r is None:
                out.append(f"| {what} | {t} | not run | - |")
            else:
                out.append(f"| {what} | {t} | {r:.2f}x | {'met' if r >= want else 'NOT met'} |")
    return "\n".join(out)


def report(groups: dict[str, Group], machine: dict[str, Any]) -> str:
    if not groups:
        return "no benchmarks of bench/test_bert.py in this JSON"
    names = sorted(groups, key=lambda n: _threads(groups[n]))
    m0 = next(iter(groups[names[0]].values()))
    return "\n".join([
        f"### BERT-base, sequence {m0.get('tokens', 128)}, batch {m0.get('batch', 1)}", "",
        machine_text(groups, machine), "",
        ("Ratios: peer median / pyruntime median in the same group (> 1: pyruntime is faster). pyruntime runs "
         "its dense or compressed model, the peers the dense one."), "",
        "#### Aim", "", aims_table(groups, names), "",
        "#### Speed ratios", "", ratios_table(groups, names), "",
        "#### Medians", "", times_table(groups, names), "",
        "#### File sizes", "", sizes_table(groups), "",
        "#### pyruntime variants", "", variants_table(groups)])


def main() -> int:
    from report_cli import report_main

    return report_main(__doc__, lambda paths: report(*load(paths[0])), "pytest-benchmark JSON of bench/test_bert.py")


if __name__ == "__main__":
    raise SystemExit(main())
