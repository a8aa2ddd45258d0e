"""The cost model (pyruntime.cost) against the benchmark's measurements, for bench/report.py.

For every single-threaded pyruntime linear-layer benchmark, the model predicts the time of the same
call (encoding, shape, entries, codebook size, batch, execution-layout bytes) and the report shows
predicted / measured. Per group (one weight, one batch) it also checks the ranking that the
converter's choice relies on: whether the method the model predicts fastest is the one measured
fastest, and if not, how much slower the predicted pick measured ("regret").

The int8 layers of bench/test_int8.py (dynamic int8, the input quantized at every call) are checked
the same way against the built-in profile of each ISA level they ran at:

    python bench/cost_check.py int8 int8.json

The conv layers of bench/test_conv.py (one thread; every method pyruntime ran: direct, direct_lanes,
im2col) against the built-in profile of their ISA level, with the conv terms of pyruntime.cost.conv
("new") and as the GEMMs of their im2col patches, which is how conv layers were priced before those
terms ("gemm"):

    python bench/cost_check.py conv conv.json

Whole networks (bench/nets.py: converted as the bench converts them) at the batch and thread counts
given: per layer, the converter's predicted time against Model.profile's measured one (the fastest of
--repeats profiles, or --stat median), for the optimize="size" file (the same whatever the cost model) with the conv terms
and without them; then what optimize="speed" chooses with each (file bytes, predicted and measured
time), with the default size budget and without it:

    python bench/cost_check.py nets resnet18-4bit --at 1x1 --at 8x2 --repeats 5
"""

from __future__ import annotations

import argparse
import itertools
import json
import statistics
from collections import defaultdict
from typing import Any


def _k(row: dict[str, Any]) -> int:
    bits = row.get("bits")
    return 1 << int(bits) if bits else 0


def predictions(rows: list[dict[str, Any]], model) -> list[tuple[dict[str, Any], float]]:
    out = []
    for r in rows:
        if r.get("peer") != "pyruntime" or r.get("threads") != 1 or "rows" not in r:
            continue
        nnz = r["nnz"] if r["encoding"] in ("csr", "csr+codebook") else r["rows"] * r["cols"]
        p = model.seconds(r["encoding"], r["rows"], r["cols"], nnz, _k(r), batch=r["batch"],
                          nbytes=r.get("weight_bytes"))
        out.append((r, p))
    return out


def _pct(xs: list[float], q: float) -> float:
    xs = sorted(xs)
    return xs[min(len(xs) - 1, max(0, round(q * (len(xs) - 1))))]


def cost_model_section(rows: list[dict[str, Any]], profile: str | None = None) -> str:
    """Markdown: accuracy of the predictions and agreement of the rankings, per batch."""
    try:
        from pyruntime.cost import CostModel, default_cost_model
    except ImportError:
        return ""
    model = CostModel.load(profile) if profile else default_cost_model()
    preds = predictions(rows, model)
    if not preds:
        return ""
    lines = [f"## Cost model vs measurement (profile: {model.name})", "",
             "predicted / measured time of every single-threaded pyruntime benchmark; per group, whether the",
             "method predicted fastest was measured fastest, and how much slower the predicted pick measured.", "",
             ("| batch | benchmarks | median pred/meas | 10th-90th pct | within 1.5x | groups | pick = fastest "
              "| pairs ranked right | worst regret |"),
             "|---:|---:|---:|---:|---:|---:|---:|---:|---:|"]
    by_batch: dict[int, list] = defaultdict(list)
    for r, p in preds:
        by_batch[r["batch"]].append((r, p))
    detail = []
    for batch in sorted(by_batch):
        items = by_batch[batch]
        ratios = [p / r["median"] for r, p in items]
        groups: dict[str, list] = defaultdict(list)
        for r, p in items:
            groups[r["group"]].append((r, p))
        agree = total = pairs_ok = pairs = 0
        worst = 1.0
        for g, members in sorted(groups.items()):
            if len(members) < 2:
                continue
            total += 1
            best_meas = min(members, key=lambda m: m[0]["median"])
            best_pred = min(members, key=lambda m: m[1])
            regret = best_pred[0]["median"] / best_meas[0]["median"]
            agree += best_pred is best_meas
            worst = max(worst, regret)
            if best_pred is not best_meas:
                detail.append(f"| {g} | {best_meas[0]['label']} | {best_pred[0]['label']} | {regret:.2f}x |")
            for (a, pa), (b, pb) in itertools.combinations(members, 2):
                pairs += 1
                pairs_ok += (pa < pb) == (a["median"] < b["median"])
        within = sum(1 for x in ratios if 1 / 1.5 <= x <= 1.5) / len(ratios)
        lines.append(f"| {batch} | {len(items)} | {statistics.median(ratios):.2f} | {_pct(ratios, 0.1):.2f}-"
                     f"{_pct(ratios, 0.9):.2f} | {100 * within:.0f}% | {total} | {agree}/{total} | "
                     f"{pairs_ok}/{pairs} | {worst:.2f}x |")
    if detail:
        lines += ["", "Groups where the predicted pick was not the measured fastest:", "",
                  "| group | measured fastest | predicted fastest | pick's time / best |", "|---|---|---|---:|", *detail]
    return "\n".join(lines) + "\n"


def int8_predictions(path: str) -> list[tuple[dict[str, Any], float]]:
    """(extra_info + median, predicted seconds) of every pyruntime int8 benchmark in a test_int8.py JSON."""
    from pyruntime.cost.profiles import builtin_profile

    with open(path) as f:
        data = json.load(f)
    models: dict[str, Any] = {}
    out = []
    for b in data["benchmarks"]:
        e = b["extra_info"]
        if e.get("peer") != "pyrt" or not e.get("isa"):
            continue
        model = models.setdefault(e["isa"], builtin_profile(e["isa"]))
        p = model.seconds(e["encoding"], e["rows"], e["cols"], e["nnz"], batch=e["batch"])
        out.append(({**e, "median": b["stats"]["median"]}, p))
    return out


def int8_section(path: str) -> str:
    """Markdown: predicted / measured of the int8 benchmarks, per ISA level, encoding and batch."""
    preds = int8_predictions(path)
    if not preds:
        return ""
    lines = ["## Cost model vs measurement, int8 layers (bench/test_int8.py)", "",
             "| isa | encoding | batch | benchmarks | median pred/meas | range |", "|---|---|---:|---:|---:|---:|"]
    by: dict[tuple[str, str, int], list[float]] = defaultdict(list)
    for e, p in preds:
        by[(e["isa"], e["encoding"], e["batch"])].append(p / e["median"])
    for (isa, enc, batch), ratios in sorted(by.items()):
        lines.append(f"| {isa} | {enc} | {batch} | {len(ratios)} | {statistics.median(ratios):.2f} | "
                     f"{min(ratios):.2f}-{max(ratios):.2f} |")
    lines += ["", "| case | isa | encoding | measured (us) | predicted (us) | pred/meas |", "|---|---|---|---:|---:|---:|"]
    for e, p in sorted(preds, key=lambda ep: (ep[0]["rows"], ep[0]["sparsity"], ep[0]["batch"], ep[0]["isa"])):
        lines.append(f"| {e['rows']}x{e['cols']} s{e['sparsity']:.2f} b{e['batch']} | {e['isa']} | {e['encoding']} | "
                     f"{e['median'] * 1e6:.1f} | {p * 1e6:.1f} | {p / e['median']:.2f} |")
    return "\n".join(lines) + "\n"


# ---- convolutions (bench/test_conv.py) -------------------------------------------------------------------

def conv_predictions(path: str, stat: str = "median") -> list[tuple[dict[str, Any], float, float]]:
    """(extra_info + "median": the measured ``stat``, predicted seconds with the conv terms, predicted as
    im2col GEMMs) of every pyruntime conv benchmark in a test_conv.py JSON, by the built-in profile of its
    ISA level, for the method it ran. ``stat="min"`` for a machine shared while the benchmark ran."""
    from pyruntime.cost.conv import DIRECT_CLASSES, IM2COL_CLASS, LANES_CLASS, ConvCost, ConvGeometry
    from pyruntime.cost.profiles import builtin_profile

    with open(path) as f:
        data = json.load(f)
    models: dict[str, Any] = {}
    out = []
    for b in data["benchmarks"]:
        e = b["extra_info"]
        if e.get("kind") != "conv" or e.get("peer") != "pyruntime" or not e.get("isa"):
            continue
        model = models.setdefault(e["isa"], builtin_profile(e["isa"]))
        g = ConvGeometry(e["in_c"], e["in_hw"], e["in_hw"], e["out_c"], e["out_hw"], e["out_hw"], e["k"], e["k"],
                         e["stride"], e["stride"], e["pad"], e["pad"])
        enc, rows, cols, batch = e["encoding"], e["rows"], e["cols"], e["batch"]
        k = 1 << int(e["bits"]) if e.get("bits") else 0
        stored = e["nnz"] if enc in ("csr", "csr+codebook") else rows * cols
        ran = e["conv_method"]
        cls = IM2COL_CLASS if ran == "im2col" else LANES_CLASS if ran == "direct_lanes" else DIRECT_CLASSES[enc]
        cost = ConvCost(model, 1, g.positions, g)
        terms = cost.terms(cls, enc, rows, cols, stored, k, nbytes=e["weight_bytes"] if ran == "im2col" else None)
        new = batch * model.conv_seconds(cls, terms)
        gemm = ConvCost(model, 1, g.positions).seconds(enc, rows, cols, stored, k, batch=batch)
        out.append(({**e, "median": b["stats"][stat]}, new, gemm))
    return out


def conv_section(path: str, stat: str = "median") -> str:
    """Markdown: predicted / measured of the conv benchmarks, with the conv terms and as im2col GEMMs, per
    ISA level, method and encoding; and per (layer, sparsity, batch) whether the encoding predicted fastest
    (among pyrt-dense, pyrt-csr, pyrt-csr+codebook4 as the runtime runs them) was measured fastest."""
    preds = conv_predictions(path, stat)
    if not preds:
        return ""
    lines = ["## Cost model vs measurement, conv layers (bench/test_conv.py, one thread)", "",
             (f"conv terms: pyruntime.cost.conv; gemm: the im2col GEMMs, as convs were priced before; measured: "
             f"each benchmark's {stat}."), "",
             ("| isa | method | encoding | benchmarks | median pred/meas (conv terms) | 10th-90th pct | within 1.5x "
             "| median pred/meas (gemm) | 10th-90th pct |"), "|---|---|---|---:|---:|---:|---:|---:|---:|"]
    by: dict[tuple[str, str, str], list[tuple[float, float]]] = defaultdict(list)
    for e, new, gemm in preds:
        by[(e["isa"], e["conv_method"], e["encoding"])].append((new / e["median"], gemm / e["median"]))
    for (isa, method, enc), rs in sorted(by.items()):
        new = [a for a, _ in rs]
        old = [b for _, b in rs]
        within = sum(1 for x in new if 1 / 1.5 <= x <= 1.5) / len(new)
        lines.append(f"| {isa} | {method} | {enc} | {len(rs)} | {statistics.median(new):.2f} | {_pct(new, 0.1):.2f}-"
                     f"{_pct(new, 0.9):.2f} | {100 * within:.0f}% | {statistics.median(old):.2f} | "
                     f"{_pct(old, 0.1):.2f}-{_pct(old, 0.9):.2f} |")
    groups: dict[tuple[str, str, float, int], list[tuple[dict[str, Any], float, float]]] = defaultdict(list)
    for e, new, gemm in preds:
        if e["forced"] == "auto":
            groups[(e["isa"], e["layer"], e["sparsity"], e["batch"])].append((e, new, gemm))
    lines += ["", ("Per (layer, sparsity, batch): the encoding predicted fastest against the one measured fastest; "
              "regret: the pick's measured time over the fastest's."), "",
              ("| isa | groups | pick = fastest (conv terms) | regret > 1.2x | worst regret | pick = fastest (gemm) | "
              "regret > 1.2x | worst regret |"), "|---|---:|---:|---:|---:|---:|---:|---:|"]
    for isa in sorted({k[0] for k in groups}):
        gs = [m for k, m in groups.items() if k[0] == isa and len(m) > 1]
        row = [isa, str(len(gs))]
        for i in (1, 2):
            regrets = []
            for members in gs:
                fastest = min(members, key=lambda m: m[0]["median"])
                pick = min(members, key=lambda m: m[i])
                regrets.append(pick[0]["median"] / fastest[0]["median"])
            row += [f"{sum(r == 1.0 for r in regrets)}/{len(gs)}", str(sum(r > 1.2 for r in regrets)),
                    f"{max(regrets):.2f}x"]
        lines.append("| " + " | ".join(row) + " |")
    return "\n".join(lines) + "\n"


# ---- whole networks (bench/nets.py) --------------------------------------------------------------------

def measure_layers(models: dict[str, Any], x, repeats: int, seconds: float, stat: str = "min"
                   ) -> dict[str, dict[str, float]]:
    """Per model (name -> loaded pyruntime.Model), each weighted layer's seconds per run over ``repeats``
    rounds of profiles (each the mean of the runs of about ``seconds``), the models taking turns in every
    round so that a load that comes and goes on a shared machine falls on all of them alike; per layer the
    ``stat`` of its rounds: "min" (the least disturbed) or "median"."""
    runs: dict[str, dict[str, list[float]]] = {name: defaultdict(list) for name in models}
    for _ in range(repeats):
        for name, model in models.items():
            for r in model.profile(x, seconds):
                if r["encoding"]:
                    runs[name][r["layer"]].append(r["seconds"])
    pick = min if stat == "min" else statistics.median
    return {name: {k: pick(v) for k, v in layers.items()} for name, layers in runs.items()}


def net_check(variant: str, at: list[tuple[int, int]], repeats: int = 5, seconds: float = 1.0, stat: str = "min",
              per_layer: bool = False) -> str:
    """Markdown: the cost model against measurement on a bench/nets.py network (see the module docstring);
    ``per_layer``: also each layer of the optimize="size" file."""
    import copy
    import math

    import nets
    import torch
    from nets import VARIANTS, build_net, example_input

    import pyruntime
    from pyruntime import _core
    from pyruntime.convert import from_torch
    from pyruntime.cost import CostModel, default_cost_model

    v = VARIANTS[variant]
    net = build_net(v.net)
    sparsity, bits = v.settings(net)
    conv_model = default_cost_model()
    gemm_model = CostModel.from_dict({**conv_model.to_dict(), "conv": {}})  # convs as im2col GEMMs
    gemm_model.name += " without conv terms"

    def convert(model, batch, threads, **kw):
        return from_torch(copy.deepcopy(net), torch.zeros(1, *nets.INPUT_SHAPE), sparsity=sparsity, bits=bits,
                          batch=batch, threads=threads, cost_model=model, **kw)

    lines = [f"## Cost model vs measurement: {variant} (ISA {_core.active_isa()}, profile: {conv_model.name})", "",
             (f"measured: per layer the {stat} of {repeats} rounds of Model.profile ({seconds:g} s each), the files "
             "taking turns in every round."), ""]
    speed_runs = (("speed, gemm, unbounded", gemm_model, math.inf), ("speed, conv terms, default budget", conv_model, None),
                  ("speed, conv terms, unbounded", conv_model, math.inf))
    for batch, threads in at:
        x = example_input(batch)
        lines += [f"### batch {batch}, {threads} thread{'s' if threads > 1 else ''}", ""]
        # the size-optimized file is the same whatever the cost model: both models' predictions of its layers
        size = {name: convert(m, batch, threads) for name, m in (("conv terms", conv_model), ("gemm", gemm_model))}
        files = {"size": size["conv terms"]}
        files.update({name: convert(m, batch, threads, optimize="speed", size_budget=b) for name, m, b in speed_runs})
        meas = measure_layers({name: pyruntime.load(cm.to_bytes(), threads=threads) for name, cm in files.items()},
                              x, repeats, seconds, stat)
        lines += ["optimize=\"size\" file: predicted / measured per weighted layer", "",
                  ("| prediction | predicted total (ms) | measured total (ms) | ratio | median layer ratio | "
                   "10th-90th pct | min-max |"), "|---|---:|---:|---:|---:|---:|---:|"]
        for name, cm in size.items():
            pred = {r.name: r.predicted_seconds[r.encoding] for r in cm.layers}
            got = meas["size"]
            ratios = [pred[k] / got[k] for k in pred if k in got]
            tp, tm = sum(pred.values()), sum(got[k] for k in pred if k in got)
            lines.append(f"| {name} | {tp * 1e3:.2f} | {tm * 1e3:.2f} | {tp / tm:.2f} | {statistics.median(ratios):.2f} | "
                         f"{_pct(ratios, 0.1):.2f}-{_pct(ratios, 0.9):.2f} | {min(ratios):.2f}-{max(ratios):.2f} |")
        if per_layer:
            gemm_pred = {r.name: r.predicted_seconds[r.encoding] for r in size["gemm"].layers}
            lines += ["", "| layer | encoding | measured (us) | conv terms (us) | ratio | gemm (us) | ratio |",
                      "|---|---|---:|---:|---:|---:|---:|"]
            for r in size["conv terms"].layers:
                p, q, mm = r.predicted_seconds[r.encoding], gemm_pred[r.name], meas["size"].get(r.name, float("nan"))
                lines.append(f"| {r.name} | {r.encoding} | {mm * 1e6:.0f} | {p * 1e6:.0f} | {p / mm:.2f} | "
                             f"{q * 1e6:.0f} | {q / mm:.2f} |")
        size_bytes = files["size"].file_bytes
        lines += ["", "What each objective and model chooses: the size-optimized file, then optimize=\"speed\"", "",
                  "| file | bytes | vs size-optimized | encodings | predicted (ms) | measured (ms) |",
                  "|---|---:|---:|---|---:|---:|"]
        for name, cm in files.items():
            pred = sum(r.predicted_seconds[r.encoding] for r in cm.layers)
            enc: dict[str, int] = defaultdict(int)
            for r in cm.layers:
                enc[r.encoding] += 1
            lines.append(f"| {name} | {cm.file_bytes} | {cm.file_bytes / size_bytes:.2f}x | "
                         f"{', '.join(f'{k} {n}' for k, n in sorted(enc.items()))} | {pred * 1e3:.2f} | "
                         f"{sum(meas[name].values()) * 1e3:.2f} |")
        lines.append("")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    import sys

    argv = list(sys.argv[1:] if argv is None else argv)
    if argv and argv[0].endswith(".json"):  # the older form: an int8 JSON
        argv.insert(0, "int8")
    ap = argparse.ArgumentParser(description="the cost model against measurement")
    sub = ap.add_subparsers(dest="what", required=True)
    sub.add_parser("int8", help="bench/test_int8.py's JSON").add_argument("json")
    c = sub.add_parser("conv", help="bench/test_conv.py's JSON")
    c.add_argument("json")
    c.add_argument("--stat", choices=("median", "min"), default="median",
                   help="the measured statistic (min: for a run on a shared machine)")
    n = sub.add_parser("nets", help="a bench/nets.py network, converted and profiled now")
    n.add_argument("variant", nargs="?", default="resnet18-4bit")
    n.add_argument("--at", action="append", default=[], metavar="BATCHxTHREADS",
                   help="batch and threads, e.g. 8x2 (repeatable; default 1x1 and 8x2)")
    n.add_argument("--repeats", type=int, default=5, help="profiles per file (the median is taken)")
    n.add_argument("--seconds", type=float, default=1.0, help="seconds per profile")
    n.add_argument("--stat", choices=("min", "median"), default="min",
                   help="of the profiles, per layer (min: the least disturbed, on a shared machine)")
    n.add_argument("-v", "--per-layer", action="store_true", help="also every layer of the size-optimized file")
    args = ap.parse_args(argv)
    if args.what == "int8":
        print(int8_section(args.json))
    elif args.what == "conv":
        print(conv_section(args.json, args.stat))
    else:
        at = [tuple(int(p) for p in a.lower().split("x")) for a in (args.at or ["1x1", "8x2"])]
        print(net_check(args.variant, at, args.repeats, args.seconds, args.stat, args.per_layer))  # type: ignore[arg-type]
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
