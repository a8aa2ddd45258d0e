"""The command line the report scripts share: JSON files in, markdown tables printed (and written with -o);
and the loader of whole-model benchmark groups (test_nets.py, test_bert.py)."""
from __future__ import annotations

import argparse
import json
from collections import defaultdict
from collections.abc import Callable, Sequence
from typing import Any


def load_groups(path: str, kind: str) -> tuple[dict[str, dict[str, dict[str, Any]]], dict[str, Any]]:
    """The benchmarks of pytest-benchmark JSON ``path`` whose extra_info says ``kind``, by group name then
    method (median, rounds and the extra_info), and the machine info."""
    with open(path) as f:
        data = json.load(f)
    groups: dict[str, dict[str, dict[str, Any]]] = defaultdict(dict)
    for b in data["benchmarks"]:
        e = b.get("extra_info") or {}
        if e.get("kind") != kind:
            continue
        stats = b["stats"]
        groups[b["group"]][e["method"]] = {"median": stats["median"], "rounds": stats["rounds"], **e}
    return dict(groups), data.get("machine_info") or {}


def report_main(doc: str | None, build: Callable[[Sequence[str]], str], json_help: str, many: bool = False) -> int:
    """Parses ``json`` (one path, or several with ``many``) and ``-o``; prints ``build(paths)``, and writes
    it to the ``-o`` file too."""
    ap = argparse.ArgumentParser(description=(doc or "").splitlines()[0] if doc else None)
    ap.add_argument("json", nargs="+" if many else None, help=json_help)
    ap.add_argument("-o", "--output", help="also write the tables to this file")
    args = ap.parse_args()
    text = build(args.json if many else [args.json])
    print(text)
    if args.output:
        with open(args.output, "w") as f:
            f.write(text + "\n")
    return 0
