#!/usr/bin/env python3
"""Turns a pytest-benchmark JSON of bench/ into markdown tables and a plot.

    pytest bench --benchmark-json=bench.json
    python bench/report.py bench.json                  # tables to stdout, plot to bench.png
    python bench/report.py bench.json -o bench.md --plot speed.png
    python bench/report.py bench.json --no-plot

Sections, each present when the JSON holds its benchmarks:

- Aims: each performance aim of the 4096 x 4096 layer (speedups at batch 1 and 90% sparsity with
  4-bit shared values, dense 4-bit codebook at batch 1, the sparsity from which sparse beats dense at
  batch 64) with the ratio measured in this run and whether it is met.
- Bandwidth: the machine's read bandwidth (test_bandwidth.py) at 1 thread and the default thread count,
  and for the model bigger than the last-level cache (test_large_model.py) the effective weight
  bandwidth at batch 1 (bytes streamed per run / median time), in GB/s and as a fraction of the read
  bandwidth at the same thread count.
- pyruntime against the peers: every pyruntime method with its speedup over each peer of its group.
- Groups: per group (one layer, one sparsity, one batch) a table of every method: median time, speedup
  against each peer in the same group (peer time / method time, so > 1 means faster than the peer), the
  weight bytes streamed per call and their rate in GB/s, dense-equivalent GFLOP/s and, for pyruntime,
  the model-file size.
- Loading (test_load.py): load time and memory per model form and loading mode.
- Convolutions (test_conv.py): per conv layer and batch, the crossover (the lowest sparsity from which
  the best sparse pyruntime conv beats torch's dense conv2d, and pyruntime's own dense conv), time ratios
  against both across sparsity, im2col against direct per case (and whether "auto" ran the faster), and
  every median.

The plot has, per layer run at several sparsities, one panel per batch of dense-equivalent GFLOP/s
against sparsity (one line per method; of the codebook widths only the 4-bit one, solid lines for
pyruntime, dashed for the peers, dotted for the default-thread runs), and a row of time against
codebook bits (pyruntime codebook and csr+codebook, the dense peers as horizontal lines). It needs
matplotlib and is skipped, with a message, when matplotlib is absent.
"""

from __future__ import annotations

import argparse
import json
import re
import sys
from collections import defaultdict
from pathlib import Path
from typing import Any

# Peers a pyruntime method is compared with, in column order (the single-thread runs; the "-mt" runs
# appear as rows of the group tables).
PEERS: tuple[str, ...] = ("numpy-dense", "scipy-csr", "torch-dense", "torch-sparse-csr", "torch-int8-dynamic")
BASELINE = "numpy-dense"

# The aims are stated for this layer, sparsity and codebook width (bench/shapes.py HEADLINE_BITS).
AIM_LAYER = "4096"
AIM_SPARSITY = 0.9
AIM_BITS = 4
AIM_GEMM_BATCH = 64
AIM_SPARSE_FROM = 0.7  # "sparse beats dense from 70% sparsity on" at AIM_GEMM_BATCH
# Widths drawn in the sparsity panels (the others are in the group tables and the bits panels).
PLOT_BITS = (AIM_BITS,)
# Peer colors in the plot (dashed lines); pyruntime's methods get the other tab10 colors, solid.
PEER_COLORS: dict[str, str] = {
    "numpy-dense": "black",
    "torch-dense": "#7f7f7f",
    "torch-int8-dynamic": "#9467bd",
    "scipy-csr": "#8c564b",
    "torch-sparse-csr": "#e377c2",
}


def load(path: Path) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    data = json.loads(path.read_text())
    rows = []
    for b in data.get("benchmarks", []):
        info = dict(b.get("extra_info") or {})
        if "method" not in info or info.get("kind"):  # not a linear-layer benchmark (test_linear.py)
            continue
        info["group"] = b.get("group") or "ungrouped"
        info["median"] = b["stats"]["median"]
        info["stddev"] = b["stats"]["stddev"]
        info["rounds"] = b["stats"]["rounds"]
        info.setdefault("label", info["method"])
        rows.append(info)
    return data, rows


def kind_rows(data: dict[str, Any], kind: str) -> list[dict[str, Any]]:
    """The benchmarks whose extra_info says kind=`kind`: "load" (bench/test_load.py), "bandwidth"
    (bench/test_bandwidth.py), "large_model" (bench/test_large_model.py)."""
    rows = []
    for b in data.get("benchmarks", []):
        info = dict(b.get("extra_info") or {})
        if info.get("kind") == kind:
            info["median"] = b["stats"]["median"]
            rows.append(info)
    return rows


def load_rows(data: dict[str, Any]) -> list[dict[str, Any]]:
    """The loading benchmarks (bench/test_load.py): one row per model form and mode."""
    return kind_rows(data, "load")


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


# --------------------------------------------------------------------------------------------------
# Aims


def _median_of(rows: list[dict[str, Any]], method: str, **match: Any) -> dict[str, Any] | None:
    """The fastest row of `method` (1-thread runs keep their plain method name; several ISAs: the best)
    among rows whose extra_info matches `match`."""
    cands = [r for r in rows if r["method"] == method and all(r.get(k) == v for k, v in match.items())]
    return min(cands, key=lambda r: r["median"]) if cands else None


def _close(a: float | None, b: float) -> bool:
    return a is not None and abs(a - b) < 1e-9


def sparse_vs_dense(rows: list[dict[str, Any]], batch: int = AIM_GEMM_BATCH) -> list[dict[str, Any]]:
    """Per sparsity of the aim layer at `batch`: the fastest pyruntime sparse method on 1 thread (csr or
    csr+codebook at any width) against the fastest dense method on 1 thread (numpy-dense and torch-dense,
    timed in the dense group and in the sparsity's own group, and pyrt-dense from the dense group)."""
    lay = [r for r in rows if r["layer"] == AIM_LAYER and r["batch"] == batch]
    dense_group = [r for r in lay if r["sparsity"] == 0.0]
    out = []
    for s in sorted({r["sparsity"] for r in lay if r["sparsity"] > 0.0}):
        group = [r for r in lay if _close(r["sparsity"], s)]
        sparse = [r for r in group if r["peer"] == "pyruntime" and r["threads"] == 1
                  and r["encoding"] in ("csr", "csr+codebook")]
        dense = [r for r in dense_group + group
                 if r["threads"] == 1 and r["method"] in ("numpy-dense", "torch-dense")]
        dense += [r for r in dense_group if r["method"] == "pyrt-dense"]
        if not sparse or not dense:
            continue
        bs = min(sparse, key=lambda r: r["median"])
        bd = min(dense, key=lambda r: r["median"])
        out.append({"sparsity": s, "sparse": bs, "dense": bd, "ratio": bd["median"] / bs["median"]})
    return out


def wins_from(svd: list[dict[str, Any]]) -> float | None:
    """The smallest measured sparsity from which on (it and every higher one) sparse beats dense."""
    start = None
    for e in reversed(svd):  # ascending sparsity, walked from the top
        if e["ratio"] <= 1.0:
            break
        start = e["sparsity"]
    return start


def aims(rows: list[dict[str, Any]], large: list[dict[str, Any]], bw: dict[int, float]) -> str:
    """The issue's aims for the 4096 x 4096 layer, each with the ratio measured in this run."""
    body = []

    def ratio_row(aim: str, target: float, peer: dict | None, mine: dict | None) -> None:
        if peer is None or mine is None:
            body.append([aim, "not run", f">= {target:g}x", "–"])
            return
        r = peer["median"] / mine["median"]
        measured = f"{r:.2f}x ({fmt_time(peer['median'])} / {fmt_time(mine['median'])})"
        body.append([aim, measured, f">= {target:g}x", "**met**" if r >= target else "**not met**"])

    sel = {"layer": AIM_LAYER, "batch": 1, "threads": 1}
    sp = [r for r in rows if _close(r["sparsity"], AIM_SPARSITY)]
    dn = [r for r in rows if r["sparsity"] == 0.0]
    cb = f"pyrt-csr+codebook{AIM_BITS}"
    pct = f"{AIM_SPARSITY:.0%}"
    ratio_row(f"batch 1, {pct} sparse, {AIM_BITS}-bit shared values ({cb}) vs torch sparse CSR", 2.0,
              _median_of(sp, "torch-sparse-csr", **sel), _median_of(sp, cb, **sel))
    ratio_row(f"batch 1, {pct} sparse, {AIM_BITS}-bit shared values ({cb}) vs numpy dense fp32", 5.0,
              _median_of(sp, "numpy-dense", **sel), _median_of(sp, cb, **sel))
    ratio_row(f"batch 1, dense {AIM_BITS}-bit codebook (pyrt-codebook{AIM_BITS}) vs numpy dense fp32", 2.0,
              _median_of(dn, "numpy-dense", **sel), _median_of(dn, f"pyrt-codebook{AIM_BITS}", **sel))

    svd = sparse_vs_dense(rows)
    aim4 = (f"batch {AIM_GEMM_BATCH}: sparse (pyrt csr / csr+codebook) beats the best dense "
            f"from {AIM_SPARSE_FROM:.0%} on")
    relevant = [e for e in svd if e["sparsity"] >= AIM_SPARSE_FROM]
    if relevant:
        start = wins_from(svd)
        met = all(e["ratio"] > 1.0 for e in relevant)
        measured = (f"wins from sparsity {start:.2f} on" if start is not None
                    else "does not win at the highest sparsity")
        measured += "; " + ", ".join(f"{e['sparsity']:.2f}: {e['ratio']:.2f}x" for e in relevant)
        body.append([aim4, measured, f"> 1x at every sparsity >= {AIM_SPARSE_FROM:.2f}",
                     "**met**" if met else "**not met**"])
    else:
        body.append([aim4, "not run", f"> 1x at every sparsity >= {AIM_SPARSE_FROM:.2f}", "–"])

    for r in sorted((r for r in large if r["method"] == cb), key=lambda r: r["threads"]):
        eff = r["exec_bytes"] / r["median"] / 1e9
        frac = f" = {eff / bw[r['threads']]:.0%} of the measured read bandwidth" if r["threads"] in bw else ""
        threads = f"{r['threads']} thread{'s' if r['threads'] > 1 else ''}"
        body.append([f"model bigger than the L3, batch 1: effective weight bandwidth ({cb}, {threads})",
                     f"{eff:.1f} GB/s{frac}", "reported", "–"])

    out = md_table(["aim", "measured", "target", "result"], body)
    if svd:
        table = [[f"{e['sparsity']:.2f}", e["sparse"]["label"], fmt_time(e["sparse"]["median"]),
                  e["dense"]["label"], fmt_time(e["dense"]["median"]), fmt_ratio(e["ratio"]),
                  "sparse" if e["ratio"] > 1.0 else "dense"]
                 for e in svd]
        out += (f"\n\nSparse against dense, {AIM_LAYER} layer, batch {AIM_GEMM_BATCH}, 1 thread (best dense: "
                "numpy-dense, torch-dense, pyrt-dense; sparsities between the measured ones are not run):\n\n"
                + md_table(["sparsity", "best sparse", "median", "best dense", "median", "dense / sparse",
                            "faster"], table))
    return out


# --------------------------------------------------------------------------------------------------
# Bandwidth


def read_bandwidth(bw_rows: list[dict[str, Any]]) -> dict[int, float]:
    """Measured read bandwidth in GB/s per thread count (bytes / median time)."""
    out: dict[int, float] = {}
    for r in bw_rows:
        out[r["threads"]] = max(out.get(r["threads"], 0.0), r["bytes"] / r["median"] / 1e9)
    return out


def bandwidth_section(bw_rows: list[dict[str, Any]], large: list[dict[str, Any]]) -> str:
    bw = read_bandwidth(bw_rows)
    parts = []
    if bw_rows:
        r0 = bw_rows[0]
        parts.append(
            f"Read bandwidth ({r0['method']} over {fmt_bytes(r0['bytes'])}, bench/test_bandwidth.py): "
            + ", ".join(f"{bw[t]:.1f} GB/s on {t} thread{'s' if t > 1 else ''}" for t in sorted(bw)) + "."
        )
    if large:
        r0 = large[0]
        # seconds per layer: each encoding's chain has its own length (twice the L3 or more)
        numpy_t = {r["threads"]: r["median"] / r["layers"] for r in large if r["method"] == "numpy-dense"}
        parts.append(
            f"Model bigger than the last-level cache (bench/test_large_model.py): a chain of linear layers of "
            f"{r0['rows']}x{r0['cols']} per encoding, long enough to stream twice the L3 "
            f"({fmt_bytes(r0['llc_bytes'])}) per run, batch {r0['batch']}. "
            "Effective weight bandwidth = bytes the layers stream per run (sum of `exec_bytes`) / median "
            "time; fraction = that / the read bandwidth at the same thread count; against numpy, time per layer."
        )
        body = []
        for r in sorted(large, key=lambda r: (r["threads"], r["median"])):
            eff = r["exec_bytes"] / r["median"] / 1e9
            peer = numpy_t.get(r["threads"])
            body.append([
                f"**{r['label']}**" if r["peer"] == "pyruntime" else r["label"],
                str(r["threads"]),
                str(r["layers"]),
                fmt_bytes(r["exec_bytes"]),
                fmt_time(r["median"]),
                f"{eff:.1f}",
                f"{eff / bw[r['threads']]:.0%}" if r["threads"] in bw else "–",
                fmt_ratio(peer / (r["median"] / r["layers"]) if peer else None),
            ])
        parts.append(md_table(["method", "threads", "layers", "bytes per run", "median", "effective GB/s",
                               "of read bandwidth", "vs numpy-dense (same threads)"], body))
    return "\n\n".join(parts)


# --------------------------------------------------------------------------------------------------
# Convolutions (bench/test_conv.py)

# The dense references of the conv ratios, and the sparse pyruntime convs of the crossover: csr and
# csr+codebook at any width, each with the method "auto" (what a loaded model runs).
CONV_DENSE = ("torch-dense", "pyrt-dense")
CONV_FORCED = ("pyrt-csr-im2col", "pyrt-csr-direct")


def conv_rows(data: dict[str, Any]) -> list[dict[str, Any]]:
    """The conv benchmarks (extra_info kind="conv"), with their group."""
    rows = []
    for b in data.get("benchmarks", []):
        info = dict(b.get("extra_info") or {})
        if info.get("kind") == "conv":
            info["group"] = b.get("group") or "ungrouped"
            info["median"] = b["stats"]["median"]
            rows.append(info)
    return rows


def _is_auto_sparse(r: dict[str, Any]) -> bool:
    return r["peer"] == "pyruntime" and r["encoding"] in ("csr", "csr+codebook") and r.get("forced") == "auto"


def _conv_layer_order(rows: list[dict[str, Any]]) -> list[str]:
    """Layers in bench/conv_shapes.py's order (LeNet-5, ResNet-20, MobileNet), unknown ones after."""
    try:
        from conv_shapes import CONV_LAYERS

        known = [lay.name for lay in CONV_LAYERS]
    except ImportError:
        known = []
    present = {r["layer"] for r in rows}
    return [n for n in known if n in present] + sorted(present - set(known))


def _conv_cases(rows: list[dict[str, Any]]) -> dict[tuple[str, int], dict[float, dict[str, dict[str, Any]]]]:
    """(layer, batch) -> sparsity -> method -> the fastest row of that method (over the timed ISAs)."""
    out: dict[tuple[str, int], dict[float, dict[str, dict[str, Any]]]] = defaultdict(lambda: defaultdict(dict))
    for r in rows:
        cell = out[(r["layer"], r["batch"])][r["sparsity"]]
        if r["method"] not in cell or r["median"] < cell[r["method"]]["median"]:
            cell[r["method"]] = r
    order = {name: i for i, name in enumerate(_conv_layer_order(rows))}
    return dict(sorted(out.items(), key=lambda kv: (order[kv[0][0]], kv[0][1])))


def _best_sparse(methods: dict[str, dict[str, Any]]) -> dict[str, Any] | None:
    cands = [r for r in methods.values() if _is_auto_sparse(r)]
    return min(cands, key=lambda r: r["median"]) if cands else None


def conv_crossover(levels: dict[float, dict[str, dict[str, Any]]], dense: str) -> tuple[float | None, list[float]]:
    """For one (layer, batch): (the lowest measured sparsity from which on, it and every higher one, the
    best auto sparse pyruntime conv beats `dense` (None: it does not win at the highest), the sparsities
    where it wins at all)."""
    wins: list[tuple[float, bool]] = []
    for s in sorted(levels):
        sp, dn = _best_sparse(levels[s]), levels[s].get(dense)
        if sp is not None and dn is not None:
            wins.append((s, dn["median"] / sp["median"] > 1.0))
    start = None
    for s, won in reversed(wins):
        if not won:
            break
        start = s
    return start, [s for s, won in wins if won]


def _crossover_cell(levels: dict[float, dict[str, dict[str, Any]]], dense: str) -> str:
    measured = sorted(s for s in levels if _best_sparse(levels[s]) and dense in levels[s])
    if not measured:
        return "not run"
    start, won = conv_crossover(levels, dense)
    if start is None:
        cell = f"none up to {measured[-1]:.2f}"
        if won:
            cell += " (wins only at " + ", ".join(f"{s:.2f}" for s in won) + ")"
        return cell
    best = _best_sparse(levels[start])
    lowest = "lowest run; " if start == measured[0] else ""
    return f"**{start:.2f}** ({lowest}{best['method']} {fmt_ratio(levels[start][dense]['median'] / best['median'])})"


def _median_over(levels: dict[float, dict[str, dict[str, Any]]], method: str) -> float | None:
    """The median of a method's medians over the sparsity groups (the dense convs do the same work in
    each)."""
    ts = sorted(levels[s][method]["median"] for s in levels if method in levels[s])
    return ts[len(ts) // 2] if ts else None


def _conv_intro(rows: list[dict[str, Any]]) -> str:
    labels = sorted({r["label"] for r in rows})
    return (
        "bench/test_conv.py: 2-D convolutions of LeNet-5, ResNet-20 and MobileNet (pointwise), magnitude-pruned, "
        "every method on 1 thread. Ratios are the reference's median / the method's median in the same "
        "group (> 1: the method is faster). *Sparse* is the faster of pyrt-csr and pyrt-csr+codebook (method "
        "\"auto\", as a loaded model runs them); torch-dense and pyrt-dense are timed in every sparsity's "
        "group (their work does not depend on it) and each ratio uses the same group's. With several ISAs "
        "timed, each method counts at its fastest. Methods: " + ", ".join(f"`{lab}`" for lab in labels) + "."
    )


def conv_crossover_table(cases: dict) -> str:
    body = []
    for (layer, batch), levels in cases.items():
        r0 = next(iter(next(iter(levels.values())).values()))
        top = max(levels)
        sp, td, pd = _best_sparse(levels[top]), levels[top].get("torch-dense"), levels[top].get("pyrt-dense")
        tdm, pdm = _median_over(levels, "torch-dense"), _median_over(levels, "pyrt-dense")
        body.append([
            layer,
            r0.get("description", "?"),
            str(batch),
            fmt_time(tdm) if tdm is not None else "–",
            fmt_time(pdm) if pdm is not None else "–",
            _crossover_cell(levels, "torch-dense"),
            _crossover_cell(levels, "pyrt-dense"),
            (f"{fmt_ratio(td['median'] / sp['median'] if td and sp else None)} / "
             f"{fmt_ratio(pd['median'] / sp['median'] if pd and sp else None)}"),
        ])
    top = max(s for levels in cases.values() for s in levels)
    return md_table(["layer", "conv", "batch", "torch-dense", "pyrt-dense", "sparse beats torch-dense from",
                     "sparse beats pyrt-dense from", f"at {top:.2f}: vs torch-dense / vs pyrt-dense"], body)


def conv_ratio_tables(cases: dict) -> str:
    """Per batch: rows layer x method, columns the sparsities, cells 'vs torch-dense / vs pyrt-dense'."""
    sparsities = sorted({s for levels in cases.values() for s in levels})
    batches = sorted({b for _, b in cases})
    methods = sorted({m for levels in cases.values() for ms in levels.values() for m in ms if m != "torch-dense"},
                     key=lambda m: (m != "pyrt-dense", not m.startswith("pyrt"), m in CONV_FORCED, m))
    parts = []
    for batch in batches:
        body = []
        for (layer, b), levels in cases.items():
            if b != batch:
                continue
            for m in methods:
                if not any(m in levels[s] for s in levels):
                    continue
                cells = []
                for s in sparsities:
                    r = levels.get(s, {}).get(m)
                    if r is None:
                        cells.append("–")
                        continue
                    td, pd = levels[s].get("torch-dense"), levels[s].get("pyrt-dense")
                    vs_t = fmt_ratio(td["median"] / r["median"] if td else None)
                    vs_p = fmt_ratio(pd["median"] / r["median"] if pd and m != "pyrt-dense" else None)
                    cells.append(f"{vs_t} / {vs_p}")
                body.append([layer, m, *cells])
        parts.append(f"Batch {batch}: each cell is torch-dense / method and pyrt-dense / method (> 1: the "
                     "method is faster).\n\n"
                     + md_table(["layer", "method", *[f"{s:.2f}" for s in sparsities]], body))
    return "\n\n".join(parts)


def conv_method_table(cases: dict) -> str:
    """im2col against direct (the forced pyrt-csr runs) per case, and the method "auto" ran."""
    sparsities = sorted({s for levels in cases.values() for s in levels})
    body = []
    n = n_direct = n_auto = n_auto_known = 0
    losses: list[float] = []
    for (layer, batch), levels in cases.items():
        cells, picks = [], []
        for s in sparsities:
            ms = levels.get(s, {})
            im, di, auto = ms.get("pyrt-csr-im2col"), ms.get("pyrt-csr-direct"), ms.get("pyrt-csr")
            if auto is not None:
                picks.append((s, auto.get("conv_method") or "?"))
            if im is None or di is None:
                cells.append("–")
                continue
            fast, slow = (di, im) if di["median"] < im["median"] else (im, di)
            name = "direct" if fast is di else "im2col"
            n += 1
            n_direct += name == "direct"
            cell = f"{name} {fmt_ratio(slow['median'] / fast['median'])}"
            if auto is not None and auto.get("conv_method") in ("im2col", "direct"):
                n_auto_known += 1
                if auto["conv_method"] == name:
                    n_auto += 1
                else:
                    cell += " †"
                    losses.append(slow["median"] / fast["median"])
            cells.append(cell)
        body.append([layer, str(batch), *cells, _picks(picks)])
    text = ("Faster of pyrt-csr-im2col and pyrt-csr-direct per case, with slower / faster; † where pyrt-csr "
            "(method \"auto\") ran the slower one.\n\n"
            + md_table(["layer", "batch", *[f"{s:.2f}" for s in sparsities], "auto ran"], body))
    if n:
        text += (f"\n\ndirect was faster in {n_direct} of {n} cases, im2col in {n - n_direct}. ")
        if n_auto_known:
            text += f"\"auto\" ran the faster method in {n_auto} of {n_auto_known}"
            text += (f"; where it did not, the faster one was {min(losses):.2f}x to {max(losses):.2f}x faster."
                     if losses else ".")
    return text


def _picks(picks: list[tuple[float, str]]) -> str:
    """'im2col at 0.50; direct from 0.70' from (sparsity, method) in ascending sparsity."""
    if not picks:
        return "–"
    runs: list[tuple[str, list[float]]] = []
    for s, m in picks:
        if runs and runs[-1][0] == m:
            runs[-1][1].append(s)
        else:
            runs.append((m, [s]))
    if len(runs) == 1:
        return f"{runs[0][0]} always"
    return "; ".join(f"{m} {'at' if len(ss) == 1 else 'from'} {ss[0]:.2f}" for m, ss in runs)


def conv_median_table(cases: dict) -> str:
    methods = sorted({m for levels in cases.values() for ms in levels.values() for m in ms},
                     key=lambda m: (not m.startswith("torch"), m in CONV_FORCED, m))
    body = []
    for (layer, batch), levels in cases.items():
        for s in sorted(levels):
            ms = levels[s]
            nnz = next(iter(ms.values()))["nnz"]
            cells = []
            for m in methods:
                r = ms.get(m)
                if r is None:
                    cells.append("–")
                    continue
                cell = fmt_time(r["median"])
                if r["peer"] == "pyruntime" and r.get("forced") == "auto":
                    cell += f" ({r.get('conv_method', '?')})"
                cells.append(cell)
            body.append([layer, str(batch), f"{s:.2f}", f"{nnz:,}", *cells])
    return ("Median time per call; pyruntime's \"auto\" runs name the method they ran.\n\n"
            + md_table(["layer", "batch", "sparsity", "nnz", *methods], body))


def conv_section(rows: list[dict[str, Any]]) -> str:
    cases = _conv_cases(rows)
    return "\n\n".join([
        "## Convolutions",
        _conv_intro(rows),
        "### Crossover",
        ("The lowest measured sparsity from which on (there and at every higher level run) the sparse conv is "
         "faster than each dense one, per layer and batch; the dense medians are over the sparsity groups."),
        conv_crossover_table(cases),
        "### Sparse against dense across sparsity",
        conv_ratio_tables(cases),
        "### im2col against direct",
        conv_method_table(cases),
        "### Medians",
        conv_median_table(cases),
    ])


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


def render(
    data: dict[str, Any],
    rows: list[dict[str, Any]],
    bw_rows: list[dict[str, Any]] | None = None,
    large: list[dict[str, Any]] | None = None,
) -> str:
    """The markdown report: aims, bandwidth, summary and group tables (each when its benchmarks ran)."""
    bw_rows, large = bw_rows or [], large or []
    by_group: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for r in rows:
        by_group[r["group"]].append(r)
    groups = dict(sorted(by_group.items(), key=lambda kv: group_key(kv[1])))
    title = "# pyruntime linear-layer benchmarks" if rows else "# pyruntime benchmarks"
    parts = [title, "", machine_line(data), ""]
    warning = load_warning(data)
    if warning:
        parts += [warning, ""]
    if rows:
        parts += ["## Aims", "", aims(rows, large, read_bandwidth(bw_rows)), ""]
    if bw_rows or large:
        parts += ["## Bandwidth", "", bandwidth_section(bw_rows, large), ""]
    if rows:
        parts += ["## pyruntime against the peers", "", summary_table(groups), "", "## Groups", ""]
    for g, grows in groups.items():
        parts += [group_title(g, grows), "", group_table(grows), ""]
    return "\n".join(parts)


def _family(label: str) -> str:
    """The line a label belongs to in every panel: without '-mt' and without the codebook width, so
    'pyrt-csr+codebook4-mt@avx512' and 'pyrt-csr+codebook2@avx512' share the color of
    'pyrt-csr+codebook@avx512'."""
    return re.sub(r"codebook\d+", "codebook", label.replace("-mt", "", 1))


def _style(label: str, color: Any) -> dict[str, Any]:
    """Solid thick lines for pyruntime, dashed for the peers; default-thread runs dotted, hollow markers."""
    pyrt, mt = label.startswith("pyrt"), "-mt" in label
    return {
        "color": color,
        "marker": "o" if pyrt else ".",
        "markerfacecolor": "none" if mt else color,
        "linestyle": ":" if mt else ("-" if pyrt else "--"),
        "linewidth": (1.5 if mt else 2.0) if pyrt else 1.0,
    }


def plot(rows: list[dict[str, Any]], path: Path) -> bool:
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
        from matplotlib import ticker
    except ImportError:
        print("report: matplotlib is not installed; no plot (pip install matplotlib)", file=sys.stderr)
        return False

    # Layers benchmarked at more than one sparsity get a row of panels (one per batch) of speed against
    # sparsity; layers with a dense codebook at more than one width a row of time against bits.
    levels: dict[str, set[float]] = defaultdict(set)
    widths: dict[str, set[int]] = defaultdict(set)
    for r in rows:
        levels[r["layer"]].add(r["sparsity"])
        if r["encoding"] == "codebook" and r.get("bits"):
            widths[r["layer"]].add(r["bits"])

    def by_size(names: list[str]) -> list[str]:
        return sorted(names, key=lambda lay: -max(r["rows"] * r["cols"] for r in rows if r["layer"] == lay))

    layers = by_size([lay for lay, s in levels.items() if len(s) > 1])
    bit_layers = by_size([lay for lay, b in widths.items() if len(b) > 1])
    if not layers and not bit_layers:
        print("report: no layer was run at more than one sparsity or codebook width; no plot",
              file=sys.stderr)
        return False
    batches = sorted({r["batch"] for r in rows})
    shown = [r for r in rows if r.get("bits") is None or r["bits"] in PLOT_BITS]
    # Same color for a method in every panel: fixed ones for the peers, the others in turn for pyruntime.
    color: dict[str, Any] = dict(PEER_COLORS)
    palette = [c for c in plt.get_cmap("tab10").colors if c not in color.values()]
    palette += list(plt.get_cmap("Dark2").colors)
    pyrt_families = sorted({_family(r["label"]) for r in rows} - set(color))
    color.update({f: palette[k % len(palette)] for k, f in enumerate(pyrt_families)})
    nrows = len(layers) + len(bit_layers)
    fig, axes = plt.subplots(nrows, len(batches), figsize=(6.5 * len(batches), 4.8 * nrows), squeeze=False)
    order = sorted({r["label"] for r in shown},
                   key=lambda s: (not s.startswith("pyrt"), _family(s), "-mt" in s))

    for i, layer in enumerate(layers):
        sparsities = sorted(levels[layer])
        xpos = {s: k for k, s in enumerate(sparsities)}
        r0 = next(r for r in rows if r["layer"] == layer)
        for j, batch in enumerate(batches):
            ax = axes[i][j]
            series: dict[str, list[tuple[float, float]]] = defaultdict(list)
            for r in shown:
                if r["layer"] == layer and r["batch"] == batch:
                    series[r["label"]].append((xpos[r["sparsity"]], r["dense_flops"] / r["median"] / 1e9))
            for label in [lab for lab in order if lab in series]:
                pts = sorted(series[label])
                ax.plot([p[0] for p in pts], [p[1] for p in pts], label=label,
                        **_style(label, color[_family(label)]))
            ax.set_xticks(range(len(sparsities)), ["dense" if s == 0 else f"{s:.2f}" for s in sparsities])
            ax.set_yscale("log")
            ax.set_xlabel("sparsity")
            ax.set_ylabel("dense-equivalent GFLOP/s")
            bits = "/".join(str(b) for b in PLOT_BITS)
            ax.set_title(f"{r0['rows']}x{r0['cols']}, batch {batch}: speed vs sparsity "
                         f"({bits}-bit codebooks)")
            ax.grid(True, which="both", alpha=0.3)

    # Time against codebook bits: the dense layer's codebook widths, the csr+codebook widths at the aim
    # sparsity, and the dense peers (and pyrt-dense, pyrt-csr) as horizontal lines.
    bit_handles: dict[str, Any] = {}
    for i, layer in enumerate(bit_layers, start=len(layers)):
        r0 = next(r for r in rows if r["layer"] == layer)
        for j, batch in enumerate(batches):
            ax = axes[i][j]
            here = [r for r in rows if r["layer"] == layer and r["batch"] == batch]
            curves: dict[str, list[tuple[int, float]]] = defaultdict(list)
            for r in here:
                stem = re.sub(r"codebook\d+", "codebook", r["label"])  # 'pyrt-codebook-mt@avx512'
                if r["encoding"] == "codebook" and r["sparsity"] == 0.0:
                    curves[(stem, "dense")].append((r["bits"], r["median"] * 1e3))
                elif r["encoding"] == "csr+codebook" and _close(r["sparsity"], AIM_SPARSITY):
                    curves[(stem, f"s={AIM_SPARSITY:.2f}")].append((r["bits"], r["median"] * 1e3))
            for stem, where in sorted(curves, key=lambda k: ("-mt" in k[0], k)):
                pts = sorted(curves[(stem, where)])
                name = f"{stem} ({where})"
                (h,) = ax.plot([p[0] for p in pts], [p[1] for p in pts], label=name,
                               **_style(stem, color.get(_family(stem), "k")))
                bit_handles.setdefault(name, h)
            flat = [(r, "dense") for r in here if r["sparsity"] == 0.0
                    and r["method"] in ("numpy-dense", "torch-dense", "torch-int8-dynamic", "pyrt-dense")]
            flat += [(r, f"s={AIM_SPARSITY:.2f}") for r in here if _close(r["sparsity"], AIM_SPARSITY)
                     and r["method"] == "pyrt-csr"]
            for r, where in flat:
                name = f"{r['label']} ({where})"
                st = _style(r["label"], color[_family(r["label"])])
                h = ax.axhline(r["median"] * 1e3, color=st["color"], linestyle=st["linestyle"],
                               linewidth=st["linewidth"], label=name)
                bit_handles.setdefault(name, h)
            xs = sorted(widths[layer])
            ax.set_xticks(xs, [str(b) for b in xs])
            ax.set_yscale("log")
            ax.yaxis.set_major_formatter(ticker.FuncFormatter(lambda v, _: f"{v:g}"))
            ax.yaxis.set_minor_formatter(
                ticker.FuncFormatter(lambda v, _: f"{v:g}" if f"{v:.0e}"[0] in "246" else ""))
            ax.set_xlabel("codebook index bits")
            ax.set_ylabel("median time per call (ms)")
            ax.set_title(f"{r0['rows']}x{r0['cols']}, batch {batch}: time vs codebook bits "
                         "(1 thread unless -mt)")
            ax.grid(True, which="both", alpha=0.3)

    fig.tight_layout()
    # Legends outside the panels, so no data point hides behind them: one for the sparsity rows, one for
    # the bits row.
    if layers:
        handles: dict[str, Any] = {}
        for ax in axes[: len(layers)].flat:
            for h, lab in zip(*ax.get_legend_handles_labels(), strict=True):
                handles.setdefault(lab, h)
        labs = [lab for lab in order if lab in handles]
        axes[len(layers) - 1][-1].legend([handles[lab] for lab in labs], labs, loc="center left",
                                         bbox_to_anchor=(1.02, 0.5 * len(layers)), fontsize=8)
    if bit_handles:
        labs = sorted(bit_handles, key=lambda s: (not s.startswith("pyrt"), "-mt" in s, s))
        axes[-1][-1].legend([bit_handles[lab] for lab in labs], labs, loc="center left",
                            bbox_to_anchor=(1.02, 0.5), fontsize=8)
    fig.savefig(path, dpi=110, bbox_inches="tight")
    plt.close(fig)
    print(f"report: plot written to {path}", file=sys.stderr)
    return True


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("json", type=Path, help="pytest-benchmark JSON (--benchmark-json)")
    ap.add_argument("-o", "--output", type=Path, help="write the markdown here instead of stdout")
    ap.add_argument("--plot", type=Path, help="plot file (default: the JSON path with .png)")
    ap.add_argument("--no-plot", action="store_true", help="tables only")
    ap.add_argument("--cost-profile", help="cost model profile (JSON from `pyruntime calibrate`) to check; "
                    "default: the built-in one for the active ISA")
    ap.add_argument("--no-cost-model", action="store_true", help="skip the cost model check")
    args = ap.parse_args(argv)

    data, rows = load(args.json)
    loads = load_rows(data)
    bw_rows, large = kind_rows(data, "bandwidth"), kind_rows(data, "large_model")
    convs = conv_rows(data)
    if not rows and not loads and not bw_rows and not large and not convs:
        print(f"report: no pyruntime bench results in {args.json}", file=sys.stderr)
        return 1
    text = render(data, rows, bw_rows, large)
    if loads:
        text += "\n## Loading (bench/test_load.py)\n\n" + load_table(loads) + "\n"
    if rows and not args.no_cost_model:
        from cost_check import cost_model_section

        text += "\n" + cost_model_section(rows, args.cost_profile)
    if convs:
        text += "\n" + conv_section(convs) + "\n"
    if args.output:
        args.output.write_text(text + "\n")
    else:
        print(text)
    if rows and not args.no_plot:
        plot(rows, args.plot or args.json.with_suffix(".png"))
    return 0


if __name__ == "__main__":
    sys.exit(main())
