"""pyruntime: a runtime for compressed neural networks."""
from pathlib import Path as _Path

try:
    from ._core import FormatError, UnsupportedError
except ImportError as _e:  # the compiled core is missing: say why and what to do, in one line
    _here = _Path(__file__).resolve().parent
    if (_here.parent / "pyproject.toml").is_file() and (_here.parent / "csrc").is_dir():
        raise ImportError(
            f"pyruntime is imported from its source tree ({_here}), which holds no compiled core "
            "(pyruntime._core): run from another directory to use the installed package (pip install . "
            "first), or build the core in place with tools/dev_build.sh") from _e
    raise ImportError(f"pyruntime's compiled core (pyruntime._core) does not import: {_e}; reinstall the "
                      "package (pip install --force-reinstall pyruntime)") from _e
from ._model import Model, load
from ._profile import profile_text

__version__ = "0.1.0"
__all__ = ["FormatError", "Model", "UnsupportedError", "__version__", "load", "profile_text"]
