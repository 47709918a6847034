"""nnlite: a from-scratch, pure-NumPy neural-network toolkit with hand-written backward passes.

Subpackages load on first use (``import nnlite; nnlite.nn.Linear(...)`` works).
"""
import importlib

from .grad_mode import is_grad_enabled, no_grad
from .kernels import use_kernels

__version__ = "0.1.0"


def __getattr__(name):
    """``nnlite.<submodule>`` imports that submodule on first use."""
    if not name.startswith("_"):
        try:
            return importlib.import_module(f".{name}", __name__)
        except ModuleNotFoundError as e:
            if e.name != f"{__name__}.{name}":
                raise
    raise AttributeError(f"module 'nnlite' has no attribute {name!r}")
