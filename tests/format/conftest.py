"""Makes the spec helper (pyrt_spec.py, next to this file) importable as ``import pyrt_spec`` from the
test modules here, whichever way pytest names them (rootdir packages or plain basenames)."""

import pathlib
import sys

_here = str(pathlib.Path(__file__).parent)
if _here not in sys.path:
    sys.path.insert(0, _here)
