"""Tables of bench/test_nets.py's JSON: the compressed variants (density, bits, file bytes against dense fp32,
encodings, conversion time), one row per group with pyruntime's speed ratios, a table per group (every
member's median and pyruntime's ratio against it), and the whole-network aims of the issue as met / not met.

A ratio is the peer's median / pyruntime's median in the same group (> 1: pyruntime is faster). pyruntime
runs the compressed network, the peers the dense fp32 one (torch-dynamic-int8: its Linear layers in int8).

    python bench/nets_report.py nets.json [-o nets.md]
"""

from __future__ import annotations

from typing import Any

from report_cli import load_groups

PEERS = ["torch-fp32", "ort-fp32", "torch-dynamic-int8"]
MEMBERS = ["pyruntime", *PEERS]
VARIANT_ORDER = ["squeezenet-8bit", "squeezenet-4bit", "resnet18-4bit", "resnet18-8bit", "mobilenetv2-4bit",
                 "mobilenetv2-8bit"]
# (variant, batch, threads, peer, factor): pyruntime at least `factor` times faster than the peer
AIMS = [("squeezenet-8bit", 1, 1, "torch-fp32", 1.5), ("resnet18-4bit", 1, 1, "torch-fp32", 3.0),
        ("mobilenetv2-4bit", 1, 1, "torch-fp32", 2.0)]

Group = dict[str, dict[str, Any]]


def load(path: str) -> tuple[dict[str, Group], dict[str, Any]]:
    """Groups of net benchmarks (group name -> method -> median and extra_info) and the machine info."""
    return load_groups(path, "net")


def _key(g: Group) -> tuple:
    m = next(iter(g.values()))
    v = m["variant"]
    return (VARIANT_ORDER.index(v) if v in VARIANT_ORDER else len(VARIANT_ORDER), v, m["batch"], m["threads"])


def _ms(m: dict[str, Any] | None) -> str:
    return f"{m['median'] * 1e3:.2f}" if m else "-"


def _ratio(g: Group, peer: str) -> float | None:
    p, r = g.get(peer), g.get("pyruntime")
    return p["median"] / r["median"] if p and r else None


def _fmt_ratio(r: float | None) -> str:
    return f"{r:.2f}x" if r is not None else "-"


def _isa(g: Group, machine: dict[str, Any]) -> str:
    for m in g.values():
        if m.get("isa"):
            return str(m["isa"])
    return str((machine.get("pyruntime") or {}).get("active_isa", "?"))


def _bytes(n: Any) -> str:
    if n is None:
        return "-"
    return f"{n / 1e6:.2f} MB" if n >= 1e6 else f"{n / 1e3:.1f} KB"


def machine_text(machine: dict[str, Any]) -> str:
    py = machine.get("pyruntime") or {}
    cpu = machine.get("cpu") or {}
    parts = [f"CPU: {cpu.get('brand_raw', '?')}, {machine.get('cpu_count', '?')} logical cores",
             f"pyruntime ISA: {py.get('active_isa', '?')} (supported {py.get('supported_isas', '?')})"]
    peers = machine.get("peers") or {}
    if peers.get("torch"):
        level = peers.get("torch_cpu_capability")
        onednn = peers.get("ONEDNN_MAX_CPU_ISA")
        parts.append(f"torch {peers['torch']}" + (f" (kernels {level}, oneDNN up to {onednn or 'the CPU'})"
                                                   if level else ""))
    text = "; ".join(parts) + "."
    load_avg, cores = machine.get("loadavg_start"), machine.get("cpu_count") or 1
    if load_avg and max(load_avg[0], (machine.get("loadavg_end") or [0])[0]) > 0.5 * cores:
        text += (f"\n\n**Warning**: load average {load_avg[0]:.2f} at the start, "
                 f"{(machine.get('loadavg_end') or [0])[0]:.2f} at the end, on {cores} cores: other work on "
                 "the machine skews these numbers.")
    return text


def variants_table(groups: dict[str, Group]) -> str:
    """One row per variant: its compression and conversion (from any of its pyruntime members)."""
    seen: dict[str, dict[str, Any]] = {}
    for g in groups.values():
        m = g.get("pyruntime")
        if m and m["variant"] not in seen:
            seen[m["variant"]] = m
    if not seen:
        return "No pyruntime member ran (variants skipped: see the pytest output)."
    out = [("| variant | sparsity | bits | density | .pyrt file | dense fp32 | ratio | encodings (layers) | "
           "conversion (s) |"), "|---|---|---|---|---|---|---|---|---|"]
    for v in sorted(seen, key=lambda v: VARIANT_ORDER.index(v) if v in VARIANT_ORDER else 99):
        m = seen[v]
        enc = ", ".join(f"{k} {n}" for k, n in sorted((m.get("encodings") or {}).items()))
        ratio = m["dense_fp32_bytes"] / m["file_bytes"] if m.get("file_bytes") else None
        conv = m.get("convert_seconds")
        conv_text = "-" if conv is None else f"{conv:.1f}" + (" (cached)" if m.get("cached") else "")
        density = m.get("density")
        dens = "-" if density is None else f"{density:.3f}"
        out.append(f"| {v} | {m['sparsity']} | {m['bits']} | {dens} | "
                   f"{m['file_bytes']} B | {m['dense_fp32_bytes']} B | {_fmt_ratio(ratio)} | {enc} | "
                   f"{conv_text} |")
    return "\n".join(out)


def summary_table(groups: dict[str, Group], names: list[str], machine: dict[str, Any]) -> str:
    head = ["variant", "batch", "threads", "ISA"] + [f"{m} (ms)" for m in MEMBERS]
    head += [f"{p} / pyrt" for p in PEERS]
    out = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for name in names:
        g = groups[name]
        m0 = next(iter(g.values()))
        row = [m0["variant"], str(m0["batch"]), str(m0["threads"]), _isa(g, machine)]
        row += [_ms(g.get(m)) for m in MEMBERS] + [_fmt_ratio(_ratio(g, p)) for p in PEERS]
        out.append("| " + " | ".join(row) + " |")
    return "\n".join(out)


def group_table(name: str, g: Group, machine: dict[str, Any]) -> str:
    m0 = next(iter(g.values()))
    out = [f"#### {name}", "",
           (f"{m0['variant']}, batch {m0['batch']}, {m0['threads']} thread{'s' if m0['threads'] > 1 else ''},"
            f" pyruntime ISA {_isa(g, machine)}"), "",
           "| member | median (ms) | rounds | pyruntime speed ratio | max error | model bytes |",
           "|---|---|---|---|---|---|"]
    for method in MEMBERS + sorted(set(g) - set(MEMBERS)):
        m = g.get(method)
        if not m:
            continue
        ratio = "1 (itself)" if method == "pyruntime" else _fmt_ratio(_ratio(g, method))
        out.append(f"| {method} | {_ms(m)} | {m['rounds']} | {ratio} | {m['error']:.2g} | "
                   f"{_bytes(m.get('model_bytes'))} |")
    return "\n".join(out)


def aims_table(groups: dict[str, Group]) -> str:
    by_case = {}
    for g in groups.values():
        m0 = next(iter(g.values()))
        by_case[(m0["variant"], m0["batch"], m0["threads"])] = g
    out = ["| aim | measured | met |", "|---|---|---|"]
    for variant, batch, threads, peer, want in AIMS:
        what = (f"{variant}, batch {batch}, {threads} thread{'s' if threads > 1 else ''}: "
                f">= {want:g}x {peer}")
        g = by_case.get((variant, batch, threads))
        r = _ratio(g, peer) if g else None
        if r is None:
            out.append(f"| {what} | not run | - |")
        else:
            out.append(f"| {what} | {r:.2f}x | {'met' if r >= want else 'NOT met'} |")
    return "\n".join(out)


def report(groups: dict[str, Group], machine: dict[str, Any]) -> str:
    if not groups:
        return "no benchmarks of bench/test_nets.py in this JSON"
    names = sorted(groups, key=lambda n: _key(groups[n]))
    parts = ["### Whole networks", "", machine_text(machine), "",
             ("Ratios: peer median / pyruntime median in the same group (> 1: pyruntime is faster). "
              "pyruntime runs the compressed network, the peers the dense fp32 one."), "",
             "#### Variants", "", variants_table(groups), "",
             "#### Aims", "", aims_table(groups), "",
             "#### Groups", "", summary_table(groups, names, machine)]
    parts += ["", *("\n\n".join(group_table(n, groups[n], machine) for n in names).splitlines())]
    return "\n".join(parts)


def main() -> int:
    from report_cli import report_main

    return report_main(__doc__, lambda paths: report(*load(paths[0])), "pytest-benchmark JSON of bench/test_nets.py")


if __name__ == "__main__":
    raise SystemExit(main())
