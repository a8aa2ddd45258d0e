#!/usr/bin/env bash
# Runs the test suite against a build of the C++ core instrumented with AddressSanitizer and
# UndefinedBehaviorSanitizer (CMake option PYRT_SANITIZE). Any finding aborts the test process, so a
# clean exit means zero findings.
#
#   tools/sanitize_tests.sh [pytest args...]      (default: the whole tests/ suite)
#
# Needs the package's Python dependencies in the current environment (pip install ".[test]"). The
# sanitized _core and libpyruntime are built into build/sanitize and laid over a copy of the Python
# package in build/sanitize/overlay, which is put first on PYTHONPATH; the installed package is not
# touched. Python itself is not instrumented, so the sanitizer runtimes are preloaded.
set -euo pipefail
cd "$(dirname "$0")/.."
build=build/sanitize
overlay=$build/overlay

cmake -S . -B "$build" -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo -DPYRT_SANITIZE=ON -DPYRT_BUILD_PYTHON=ON \
  -DPython_EXECUTABLE="$(command -v python)" \
  -Dpybind11_DIR="$(python -c 'import pybind11; print(pybind11.get_cmake_dir())')" >/dev/null
cmake --build "$build"

rm -rf "$overlay"
mkdir -p "$overlay/pyruntime/lib" "$overlay/pyruntime/include"
cp -r pyruntime/. "$overlay/pyruntime/"
find "$overlay/pyruntime" \( -name '_core*.so' -o -name '__pycache__' \) -prune -exec rm -rf {} +
rm -f "$overlay/pyruntime/lib/"*
cp "$build"/_core*.so "$overlay/pyruntime/"
cp "$build/libpyruntime.so" "$overlay/pyruntime/lib/"
cp csrc/include/pyruntime.h "$overlay/pyruntime/include/"

preload="$(${CXX:-c++} -print-file-name=libasan.so):$(${CXX:-c++} -print-file-name=libubsan.so)"
export LD_PRELOAD="$preload"
# Python's own allocations are never freed at exit: leak checking would only report those.
export ASAN_OPTIONS="detect_leaks=0:abort_on_error=1:strict_string_checks=1:detect_stack_use_after_return=1"
export UBSAN_OPTIONS="print_stacktrace=1:halt_on_error=1"
export PYTHONPATH="$PWD/$overlay${PYTHONPATH:+:$PYTHONPATH}"
# (from another directory: `python -c` and `python -m` put the current one first on sys.path)
(cd / && python -c "import pyruntime; f = pyruntime._core.__file__; assert '$overlay' in f, f; print('sanitized:', f)")
if [ $# -eq 0 ]; then
  # Not the Ray tests: Ray's own processes (raylet, GCS server) would inherit the preloaded sanitizer runtimes,
  # which they are not built for; pyruntime.ray runs the same Model.run that the rest of the suite checks here.
  # Not the firmware test either: it checks code built for a Cortex-M (CI runs examples/mcu/run.sh itself);
  # the bare-metal runtime's host build is checked here by tests/capi/test_micro.py.
  set -- tests --ignore=tests/distributed/test_ray.py --ignore=tests/mcu
fi
pytest -q -p no:cacheprovider "$@"  # the entry point: keeps the source tree off sys.path
