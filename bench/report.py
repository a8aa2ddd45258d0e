#!/usr/bin/env python3
"""Turns a pytest-benchmark JSON of bench/ into markdown tables and a plot.

    pytest bench --benchmark-json=bench.json
    python bench/report.py bench.json                  # tables to stdout, plot to bench.png
    python bench/report.py bench.json -o bench.md --plot speed.png
    python bench/report.py bench.json --no-plot

Per group (one layer, one sparsity, one batch) a table of every method: median time, speedup against
numpy dense and against each other peer in the same group (peer time / method time, so > 1 means
faster than the peer), the weight bytes streamed per call and their rate in GB/s, dense-equivalent
GFLOP/s and, for pyruntime, the model-file size. A first table collects pyruntime's speedups over the
peers for every group. The plot shows dense-equivalent GFLOP/s against sparsity for each method at
each batch; it needs matplotlib and is skipped, with a message, when matplotlib is absent.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections import defaultdict
from pathlib import Path
from typing import Any

# Peers a pyruntime method is compared with, in column order (the single-thread runs; the "-mt" runs
# appear as rows of the group tables).
PEERS: tuple[str, ...] = ("numpy-dense", "scipy-csr", "torch-dense", "torch-sparse-csr")
BASELINE = "numpy-dense"


def load(path: Path) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    data = json.loads(path.read_text())
    rows = []
    for b in data.get("benchmarks", []):
        info = dict(b.get("extra_info") or {})
        if "method" not in info:  # not one of ours
            continue
        info["group"] = b.get("group") or "ungrouped"
        info["median"] = b["stats"]["median"]
        info["stddev"] = b["stats"]["stddev"]
        info["rounds"] = b["stats"]["rounds"]
        info.setdefault("label", info["method"])
        rows.append(info)
    return data, rows


def load_rows(data: dict[str, Any]) -> list[dict[str, Any]]:
    """The loading benchmarks (bench/test_load.py): one row per model form and mode."""
    rows = []
    for b in data.get("benchmarks", []):
        info = dict(b.get("extra_info") or {})
        if info.get("kind") == "load":
            info["median"] = b["stats"]["median"]
            rows.append(info)
    return rows


def load_table(rows: list[dict[str, Any]]) -> str:
    """Load time and memory per model form (rows) and mode (bytes / read / mmap)."""
    modes = ("bytes", "read", "mmap")
    by_form: dict[str, dict[str, dict[str, Any]]] = defaultdict(dict)
    for r in rows:
        by_form[r["form"]][r["mode"]] = r
    body = []
    def cells(m: dict[str, dict[str, Any]], key: str, unit: str, scale: float = 1.0) -> str:
        return " / ".join(f"{m[x][key] * scale:.0f} {unit}" if key in m.get(x, {}) else "-" for x in modes)

    for form, m in by_form.items():
        first = next(iter(m.values()))
        body.append([
            form,
            fmt_bytes(first["file_bytes"]),
            cells(m, "median", "ms", 1e3),
            cells(m, "peak_extra_mb", "MiB"),
            cells(m, "anon_extra_mb", "MiB"),
            cells(m, "resident_extra_mb", "MiB"),
        ])
    dense = fmt_bytes(rows[0]["dense_bytes"])
    return (f"Model of {dense} as dense fp32; each cell is bytes / read / mmap. Peak and private memory: "
            "growth of the process during the load (VmHWM, RssAnon).\n\n"
            + md_table(["stored as", "file", "load time", "peak extra", "private after", "resident after"], body))


def group_key(rows: list[dict[str, Any]]) -> tuple:
    """Sort groups: layer (largest first), batch, sparsity."""
    r = rows[0]
    return (-r["rows"] * r["cols"], r["layer"], r["batch"], r["sparsity"])


def fmt_time(s: float) -> str:
    us = s * 1e6
    if us >= 10000:
        return f"{us / 1000:.1f} ms"
    if us >= 1000:
        return f"{us / 1000:.2f} ms"
    return f"{us:.1f} us" if us >= 10 else f"{us:.2f} us"


def fmt_ratio(x: float | None) -> str:
    if x is None:
        return "–"
    return f"{x:.2f}x" if x < 100 else f"{x:.0f}x"


def fmt_bytes(n: float | None) -> str:
    if n is None:
        return "–"
    if n >= 1 << 20:
        return f"{n / (1 << 20):.2f} MiB"
    if n >= 1 << 10:
        return f"{n / (1 << 10):.1f} KiB"
    return f"{n:.0f} B"


def peer_times(rows: list[dict[str, Any]]) -> dict[str, float]:
    return {r["method"]: r["median"] for r in rows if r["method"] in PEERS}


def md_table(header: list[str], body: list[list[str]]) -> str:
    out = ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
    out += ["| " + " | ".join(row) + " |" for row in body]
    return "\n".join(out)


def group_title(group: str, rows: list[dict[str, Any]]) -> str:
    r = rows[0]
    sparsity = "dense" if r["sparsity"] == 0 else f"sparsity {r['sparsity']:.2f}"
    model = f" ({r['model']})" if r.get("model") else ""
    return f"### {group}\n\n{r['rows']}x{r['cols']} weight{model}, {sparsity}, nnz {r['nnz']:,}, batch {r['batch']}"


def group_table(rows: list[dict[str, Any]]) -> str:
    peers = peer_times(rows)
    cols = [p for p in PEERS if p in peers]
    header = [
        "method",
        "threads",
        "median",
        *[f"vs {p}" for p in cols],
        "weight bytes",
        "GB/s",
        "GFLOP/s (dense-eq)",
        "file bytes",
    ]
    with_layout = any(r.get("layout") for r in rows)
    if with_layout:
        header.append("layout")
    body = []
    for r in sorted(rows, key=lambda r: r["median"]):
        t = r["median"]
        body.append(
            [
                f"**{r['label']}**" if r["peer"] == "pyruntime" else r["label"],
                str(r["threads"]),
                fmt_time(t),
                *[fmt_ratio(peers[p] / t) for p in cols],
                fmt_bytes(r["weight_bytes"]),
                f"{r['weight_bytes'] / t / 1e9:.1f}",
                f"{r['dense_flops'] / t / 1e9:.1f}",
                fmt_bytes(r.get("file_bytes")),
                *([r.get("layout") or "–"] if with_layout else []),
            ]
        )
    return md_table(header, body)


def summary_table(groups: dict[str, list[dict[str, Any]]]) -> str:
    header = ["group", "pyruntime method", "median", *[f"vs {p}" for p in PEERS], "GB/s"]
    body = []
    for g, rows in groups.items():
        peers = peer_times(rows)
        for r in sorted((r for r in rows if r["peer"] == "pyruntime"), key=lambda r: r["label"]):
            t = r["median"]
            body.append(
                [
                    g,
                    r["label"],
                    fmt_time(t),
                    *[fmt_ratio(peers[p] / t if p in peers else None) for p in PEERS],
                    f"{r['weight_bytes'] / t / 1e9:.1f}",
                ]
            )
    return md_table(header, body)


def machine_line(data: dict[str, Any]) -> str:
    mi = data.get("machine_info", {})
    cpu = mi.get("cpu", {}).get("brand_raw", "?")
    pr = mi.get("pyruntime", {})
    peers = mi.get("peers", {})
    commit = data.get("commit_info", {}).get("id", "?")
    return (
        f"Run {data.get('datetime', '?')} on {cpu} ({mi.get('cpu_count', '?')} CPUs), commit {str(commit)[:10]}; "
        f"pyruntime ISA {pr.get('timed_isas', '?')}; numpy {peers.get('numpy', '?')} ({peers.get('numpy_blas', '?')}), "
        f"scipy {peers.get('scipy', '?')}, torch {peers.get('torch', '?')}. "
        f"Speedups are peer median / method median (> 1: faster than the peer); peers are the 1-thread runs, "
        f"'-mt' rows use {peers.get('default_threads', '?')} threads."
    )


def load_warning(data: dict[str, Any]) -> str | None:
    """A warning when the 1-minute load average at the start or end of the run exceeded what the suite
    itself adds (about one busy core) plus half the CPUs."""
    mi = data.get("machine_info", {})
    cpus = mi.get("cpu_count") or 1
    loads = [la[0] for la in (mi.get("loadavg_start"), mi.get("loadavg_end")) if la]
    if loads and max(loads) > 1.0 + 0.5 * cpus:
        return (
            f"**Warning:** load average {' -> '.join(f'{x:.1f}' for x in loads)} on {cpus} CPUs during the "
            "run: other processes competed for the cores and the memory bus, so times are inflated and noisy."
        )
    return None


def render(data: dict[str, Any], rows: list[dict[str, Any]]) -> str:
    by_group: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for r in rows:
        by_group[r["group"]].append(r)
    groups = dict(sorted(by_group.items(), key=lambda kv: group_key(kv[1])))
    parts = ["# pyruntime linear-layer benchmarks", "", machine_line(data), ""]
    warning = load_warning(data)
    if warning:
        parts += [warning, ""]
    parts += [
        "## pyruntime against the peers",
        "",
        summary_table(groups),
        "",
        "## Groups",
        "",
    ]
    for g, grows in groups.items():
        parts += [group_title(g, grows), "", group_table(grows), ""]
    return "\n".join(parts)


def plot(rows: list[dict[str, Any]], path: Path) -> bool:
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        print("report: matplotlib is not installed; no plot (pip install matplotlib)", file=sys.stderr)
        return False

    # Layers benchmarked at more than one sparsity get a panel per batch.
    levels: dict[str, set[float]] = defaultdict(set)
    for r in rows:
        levels[r["layer"]].add(r["sparsity"])
    layers = sorted(
        (lay for lay, s in levels.items() if len(s) > 1),
        key=lambda lay: -max(r["rows"] * r["cols"] for r in rows if r["layer"] == lay),
    )
    if not layers:
        print("report: no layer was run at more than one sparsity; no plot", file=sys.stderr)
        return False
    batches = sorted({r["batch"] for r in rows})
    labels = sorted({r["label"] for r in rows}, key=lambda s: (not s.startswith("pyrt"), s))
    palette = list(plt.get_cmap("tab10").colors) + list(plt.get_cmap("Dark2").colors)
    color = {label: palette[k % len(palette)] for k, label in enumerate(labels)}  # same in every panel
    fig, axes = plt.subplots(
        len(layers), len(batches), figsize=(6.5 * len(batches), 4.8 * len(layers)), squeeze=False
    )
    for i, layer in enumerate(layers):
        sparsities = sorted(levels[layer])
        xpos = {s: k for k, s in enumerate(sparsities)}
        for j, batch in enumerate(batches):
            ax = axes[i][j]
            series: dict[str, list[tuple[float, float]]] = defaultdict(list)
            for r in rows:
                if r["layer"] == layer and r["batch"] == batch:
                    series[r["label"]].append((xpos[r["sparsity"]], r["dense_flops"] / r["median"] / 1e9))
            for label in sorted(series, key=lambda s: (not s.startswith("pyrt"), s)):
                pts = sorted(series[label])
                pyrt = label.startswith("pyrt")
                ax.plot(
                    [p[0] for p in pts],
                    [p[1] for p in pts],
                    color=color[label],
                    marker="o" if pyrt else ".",
                    linestyle="-" if pyrt else "--",
                    linewidth=2 if pyrt else 1,
                    label=label,
                )
            ax.set_xticks(range(len(sparsities)), ["dense" if s == 0 else f"{s:.2f}" for s in sparsities])
            ax.set_yscale("log")
            ax.set_xlabel("sparsity")
            ax.set_ylabel("dense-equivalent GFLOP/s")
            r0 = next(r for r in rows if r["layer"] == layer)
            ax.set_title(f"{r0['rows']}x{r0['cols']}, batch {batch}")
            ax.grid(True, which="both", alpha=0.3)
    # One legend for all panels, outside them, so no data point hides behind it.
    handles: dict[str, Any] = {}
    for ax in axes.flat:
        for h, lab in zip(*ax.get_legend_handles_labels(), strict=True):
            handles.setdefault(lab, h)
    order = [lab for lab in labels if lab in handles]
    fig.tight_layout()
    fig.legend(
        [handles[lab] for lab in order], order, loc="center left", bbox_to_anchor=(1.0, 0.5), fontsize=8
    )
    fig.savefig(path, dpi=120, bbox_inches="tight")
    plt.close(fig)
    print(f"report: plot written to {path}", file=sys.stderr)
    return True


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("json", type=Path, help="pytest-benchmark JSON (--benchmark-json)")
    ap.add_argument("-o", "--output", type=Path, help="write the markdown here instead of stdout")
    ap.add_argument("--plot", type=Path, help="plot file (default: the JSON path with .png)")
    ap.add_argument("--no-plot", action="store_true", help="tables only")
    args = ap.parse_args(argv)

    data, rows = load(args.json)
    loads = load_rows(data)
    if not rows and not loads:
        print(f"report: no pyruntime bench results in {args.json}", file=sys.stderr)
        return 1
    text = render(data, rows) if rows else f"# pyruntime benchmarks\n\n{machine_line(data)}\n"
    if loads:
        text += "\n## Loading (bench/test_load.py)\n\n" + load_table(loads) + "\n"
    if args.output:
        args.output.write_text(text + "\n")
    else:
        print(text)
    if rows and not args.no_plot:
        plot(rows, args.plot or args.json.with_suffix(".png"))
    return 0


if __name__ == "__main__":
    sys.exit(main())
