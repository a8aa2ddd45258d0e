"""Makes the shared torch helpers (torch_helpers.py, next to this file) importable as ``import torch_helpers``
from the test modules here, whichever way pytest names them (as tests/format/conftest.py does)."""

import pathlib
import sys

_here = str(pathlib.Path(__file__).parent)
if _here not in sys.path:
    sys.path.insert(0, _here)
