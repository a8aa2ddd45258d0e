"""The command line the report scripts share: JSON files in, markdown tables printed (and written with -o)."""
from __future__ import annotations

import argparse
from collections.abc import Callable, Sequence


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
