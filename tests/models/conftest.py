"""Makes model_data.py (next to this file) importable as ``import model_data`` from the test modules here,
whichever way pytest names them."""

import pathlib
import sys

_here = str(pathlib.Path(__file__).parent)
if _here not in sys.path:
    sys.path.insert(0, _here)
