"""pyruntime: a runtime for compressed neural networks."""
from ._core import FormatError, UnsupportedError
from ._model import Model, load
from ._profile import profile_text

__version__ = "0.1.0"
__all__ = ["FormatError", "Model", "UnsupportedError", "__version__", "load", "profile_text"]
