"""The cost model (pyruntime.cost) against the benchmark's measurements, for bench/report.py.

For every single-threaded pyruntime linear-layer benchmark, the model predicts the time of the same
call (encoding, shape, entries, codebook size, batch, execution-layout bytes) and the report shows
predicted / measured. Per group (one weight, one batch) it also checks the ranking that the
converter's choice relies on: whether the method the model predicts fastest is the one measured
fastest, and if not, how much slower the predicted pick measured ("regret").

The int8 layers of bench/test_int8.py (dynamic int8, the input quantized at every call) are checked
the same way against the built-in profile of each ISA level they ran at:

    python bench/cost_check.py int8.json
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


if __name__ == "__main__":
    ap = argparse.ArgumentParser(description="the cost model against bench/test_int8.py's JSON")
    ap.add_argument("json", help="pytest-benchmark JSON of bench/test_int8.py")
    print(int8_section(ap.parse_args().json))
