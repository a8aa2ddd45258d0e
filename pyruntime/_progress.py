"""Progress bars for long operations (conversion, ``bench``, ``calibrate``), drawn by tqdm on stderr.

A bar shows only where someone watches: stderr is a terminal, ``PYRUNTIME_PROGRESS`` is not ``0``, and tqdm
imports. Otherwise :func:`bar` returns a silent stand-in with the same methods, so callers need no branches
and pipes, logs and tests get no control characters. ``PYRUNTIME_PROGRESS=1`` forces bars on.
"""
from __future__ import annotations

import os
import sys
from typing import Any

ENV = "PYRUNTIME_PROGRESS"


class _Silent:
    def update(self, n: int = 1) -> None:
        pass

    def set_postfix_str(self, s: str, refresh: bool = True) -> None:
        pass

    def close(self) -> None:
        pass

    def __enter__(self) -> Any:
        return self

    def __exit__(self, *exc: object) -> None:
        pass


def enabled() -> bool:
    """Whether bars are drawn: ``PYRUNTIME_PROGRESS`` 1 / 0 decides; unset, when stderr is a terminal."""
    setting = os.environ.get(ENV, "").strip()
    if setting in ("0", "1"):
        return setting == "1"
    try:
        return sys.stderr.isatty()
    except (AttributeError, ValueError):
        return False


def bar(total: int | None, desc: str, unit: str = "step", unit_scale: bool = False) -> Any:
    """A tqdm bar of ``total`` steps on stderr (cleared when done), or a silent stand-in. ``unit_scale``:
    counts shown as 1.2M rather than 1200000."""
    if not enabled():
        return _Silent()
    try:
        from tqdm.auto import tqdm
    except ImportError:
        return _Silent()
    return tqdm(total=total, desc=desc, unit=unit, unit_scale=unit_scale, file=sys.stderr, leave=False, dynamic_ncols=True)
