"""pytest hooks of the benchmark suite: the --pyrt-isa option, the report header, machine info in the
JSON, and the `built` fixture (one case's weights, built once per module and one case live at a time).
The work itself lives in bench/harness.py."""

from __future__ import annotations

import os
import platform
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))  # bench/*.py importable whatever the import mode

import harness
from shapes import BATCHES

from pyruntime import _core

_LOADAVG_AT_START: tuple[float, float, float] | None = None


def _loadavg() -> tuple[float, float, float] | None:
    try:
        return os.getloadavg()
    except OSError:  # not available on this platform
        return None


def pytest_sessionstart(session: pytest.Session) -> None:
    global _LOADAVG_AT_START
    _LOADAVG_AT_START = _loadavg()


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("pyruntime bench")
    group.addoption(
        "--pyrt-isa",
        default="best",
        help="pyruntime ISA levels to time: 'best' (the active one, default), 'all' (every supported one, "
        "including the scalar 'ref' oracle; slow at batch 64), or a comma list such as 'ref,avx2'.",
    )


def timed_isas(config: pytest.Config) -> list[str]:
    try:
        return harness.selected_isas(config.getoption("--pyrt-isa"))
    except ValueError as e:
        raise pytest.UsageError(str(e)) from None


def pytest_configure(config: pytest.Config) -> None:
    timed_isas(config)  # a bad --pyrt-isa is a usage error before anything is collected


def pytest_report_header(config: pytest.Config) -> list[str]:
    scipy, torch = harness.scipy, harness.torch
    return [
        f"pyruntime: ISAs {_core.supported_isas()}, active {_core.active_isa()}, timed {timed_isas(config)}",
        f"numpy {np.__version__} BLAS: {harness.blas_summary()}",
        f"scipy {scipy.__version__ if scipy else 'absent'}; "
        + f"torch {torch.__version__ if torch else 'absent'} (default threads {harness.DEFAULT_THREADS}"
        + (f", kernels {torch.backends.cpu.get_cpu_capability()}, oneDNN up to "
           f"{os.environ.get('ONEDNN_MAX_CPU_ISA', 'the CPU')})" if torch else ")"),
        "peers named '*-mt' run at the default thread count; all others, pyruntime included, on 1 thread",
    ]


def pytest_benchmark_update_machine_info(config: pytest.Config, machine_info: dict[str, Any]) -> None:
    scipy, torch = harness.scipy, harness.torch
    machine_info["pyruntime"] = {
        "supported_isas": list(_core.supported_isas()),
        "active_isa": _core.active_isa(),
        "timed_isas": timed_isas(config),
        "PYRT_ISA": os.environ.get("PYRT_ISA"),
    }
    machine_info["peers"] = {
        "numpy": np.__version__,
        "numpy_blas": harness.blas_summary(),
        "scipy": scipy.__version__ if scipy else None,
        "torch": torch.__version__ if torch else None,
        # torch's kernel level (ATen's; oneDNN's convs follow ONEDNN_MAX_CPU_ISA): with ATEN_CPU_CAPABILITY=avx2
        # and ONEDNN_MAX_CPU_ISA=AVX2 beside PYRT_ISA=avx2, an AVX-512 machine times both as an AVX2-only CPU
        "torch_cpu_capability": torch.backends.cpu.get_cpu_capability() if torch else None,
        "ATEN_CPU_CAPABILITY": os.environ.get("ATEN_CPU_CAPABILITY"),
        "ONEDNN_MAX_CPU_ISA": os.environ.get("ONEDNN_MAX_CPU_ISA"),
        "default_threads": harness.DEFAULT_THREADS,
        "threadpoolctl": harness.threadpool_limits is not None,
    }
    machine_info["platform"] = platform.platform()
    machine_info["cpu_count"] = os.cpu_count()
    # Other work on the machine skews every number: report.py warns when the load was high.
    machine_info["loadavg_start"] = _LOADAVG_AT_START
    machine_info["loadavg_end"] = _loadavg()


@pytest.fixture(scope="module")
def built(request: pytest.FixtureRequest) -> harness.Built:
    """The case's weights in every format (indirectly parametrized by a shapes.Case)."""
    return harness.build_case(request.param, BATCHES)
