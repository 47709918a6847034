"""Which storey of kernels the layers run: the tuned engine (default) or the textbook one.

    nnlite.use_kernels("textbook")           # from now on, every layer runs nnlite.functional
    with nnlite.use_kernels("textbook"):     # ... or only inside the block
        model.forward(x)
    nnlite.kernels.active()                  # the module of kernels in use (nnlite.fast by default)

A layer takes the active storey at ``forward`` and keeps its name for the matching
``backward`` (the two storeys' caches differ), so switching between the two calls is safe. The setting is
process-wide (set it once, from the main thread). A student can step through a training run
in the readable kernels; a test can train the same model both ways.
"""
from __future__ import annotations

import importlib

STOREYS = {"textbook": "nnlite.functional", "fast": "nnlite.fast"}

_active = {"name": "fast"}


def active():
    """The module of kernels the layers use now (``nnlite.fast`` or ``nnlite.functional``)."""
    return storey(_active["name"])


def storey(name: str):
    """The module of kernels of storey ``name`` ("fast" or "textbook")."""
    return importlib.import_module(STOREYS[name])


def active_name() -> str:
    """"fast" or "textbook"."""
    return _active["name"]


class use_kernels:
    """Switch the layers to ``"textbook"`` or ``"fast"`` kernels: at once, and back to the
    previous storey at the end of a ``with`` block when used as a context manager."""

    def __init__(self, name: str):
        if name not in STOREYS:
            raise ValueError(f"kernels must be one of {sorted(STOREYS)}, got {name!r}")
        self.previous = _active["name"]
        _active["name"] = name

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        _active["name"] = self.previous
        return False
