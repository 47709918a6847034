"""`Module`: the base of every layer and model.

A module owns `Parameter`s, buffers (plain arrays saved with the weights but not trained,
e.g. batch-norm running statistics), child modules, a ``training`` flag and the cache that
``forward`` leaves for ``backward``.

Contract of a module::

    y  = m.forward(x)      # caches what backward needs (m(x) is the same call)
    dx = m.backward(dy)    # adds parameter gradients into p.grad, returns dL/dx

``backward`` never mutates ``dy`` and never updates weights; calling it twice with the same
``dy`` returns the same ``dx`` (parameter gradients then accumulate twice, as in PyTorch).
"""
from __future__ import annotations

import os
from collections import OrderedDict
from collections.abc import Mapping
from typing import Dict, Iterator, Tuple

import numpy as np

from .._checks import check_bool
from .parameter import Parameter


def _check_state_arg(state, what: str) -> None:
    if isinstance(state, Mapping):
        return
    hint = ""
    if isinstance(state, (str, bytes, os.PathLike)):
        hint = ("; to read a file use nnlite.train.load_checkpoint(path, model) for a checkpoint "
                "or model.load_state_dict(dict(np.load(path))) for an npz of arrays")
    raise TypeError(f"{what} expects state: a dict of arrays (name -> ndarray), got "
                    f"{type(state).__name__}{hint}")


class Module:
    """Base class of every layer and model: parameters, buffers, children, mode, cache.

    Subclass it, call ``super().__init__()`` first, assign `Parameter`s and child modules as
    attributes (they register themselves, in assignment order), and implement::

        forward(x) -> out        # caches what backward needs; m(x) is the same call
        backward(dout) -> dx     # adds into p.grad of its parameters, returns dL/dx

    ``backward`` never mutates ``dout`` and never updates weights. Buffers (saved, not
    trained, e.g. running statistics) are registered with ``register_buffer``.

    What the base class gives every module: ``named_parameters`` / ``parameters`` /
    ``trainable_parameters``, ``named_buffers``, ``named_modules`` / ``children`` (dotted
    names ``"0.weight"``), ``train()`` / ``eval()`` (the ``training`` flag of the whole tree),
    ``zero_grad``, ``freeze`` / ``unfreeze``, ``astype(dtype)`` (float32 by default, float64
    for gradient checks), ``state_dict`` / ``check_state_dict`` / ``load_state_dict`` (plain
    arrays, checked before anything is written), ``output_shape(input_shape)`` and a
    nested ``repr`` (layers add ``extra_repr``).
    """

    #: Shape of the last ``forward`` output (layers record it to check ``dout`` in backward).
    _out_shape = None

    #: Instance attributes a ``forward`` leaves for its ``backward`` (saved and restored by
    #: code that runs extra forwards in between, e.g. ``nnlite.attacks.model_eval_state``).
    _forward_state = ("_cache", "_out_shape")

    def __init__(self):
        object.__setattr__(self, "_params", OrderedDict())
        object.__setattr__(self, "_buffers", OrderedDict())
        object.__setattr__(self, "_modules", OrderedDict())
        object.__setattr__(self, "training", True)
        object.__setattr__(self, "_cache", None)

    # -- registration: assigning a Parameter or Module attribute registers it --------------
    def __setattr__(self, name, value):
        if "_params" not in self.__dict__:
            raise RuntimeError(f"{type(self).__name__}.__init__ must call super().__init__() first")
        for registry in (self._params, self._modules, self._buffers):
            registry.pop(name, None)
        if isinstance(value, Parameter):
            self._params[name] = value
        elif isinstance(value, Module):
            self._modules[name] = value
        object.__setattr__(self, name, value)

    def register_buffer(self, name: str, value: np.ndarray) -> None:
        """Register a non-trainable array saved in ``state_dict`` (e.g. running mean)."""
        object.__setattr__(self, name, value)
        self._buffers[name] = True

    def _set_buffer(self, name: str, value: np.ndarray) -> None:
        object.__setattr__(self, name, value)

    # -- the computation ----------------------------------------------------------------------
    def forward(self, x):
        raise NotImplementedError

    def backward(self, dout):
        raise NotImplementedError

    def __call__(self, x):
        return self.forward(x)

    def output_shape(self, input_shape: Tuple[int, ...]) -> Tuple[int, ...]:
        """Shape of ``forward``'s output for an input of ``input_shape`` (batch axis included).

        The default runs a forward pass on zeros in eval mode; layers override it when cheap.
        """
        was_training = self.training
        self.eval()
        try:
            out = self.forward(np.zeros(input_shape, dtype=np.float32))
        finally:
            self.train(was_training)
        return tuple(out.shape)

    # -- traversal ----------------------------------------------------------------------------
    def children(self) -> Iterator[Tuple[str, "Module"]]:
        return iter(self._modules.items())

    def named_modules(self, prefix: str = "") -> Iterator[Tuple[str, "Module"]]:
        yield prefix, self
        for name, child in self._modules.items():
            yield from child.named_modules(f"{prefix}.{name}" if prefix else name)

    def named_parameters(self, prefix: str = "") -> Iterator[Tuple[str, Parameter]]:
        """Yield ``(dotted_name, Parameter)`` for this module and all descendants, in order."""
        for name, p in self._params.items():
            yield (f"{prefix}.{name}" if prefix else name), p
        for name, child in self._modules.items():
            yield from child.named_parameters(f"{prefix}.{name}" if prefix else name)

    def parameters(self):
        return [p for _, p in self.named_parameters()]

    def trainable_parameters(self):
        return [p for p in self.parameters() if p.trainable]

    def named_buffers(self, prefix: str = "") -> Iterator[Tuple[str, np.ndarray]]:
        for name in self._buffers:
            yield (f"{prefix}.{name}" if prefix else name), getattr(self, name)
        for name, child in self._modules.items():
            yield from child.named_buffers(f"{prefix}.{name}" if prefix else name)

    # -- modes, gradients, freezing -----------------------------------------------------------
    def train(self, mode: bool = True) -> "Module":
        for _, m in self.named_modules():
            object.__setattr__(m, "training", bool(mode))
        return self

    def eval(self) -> "Module":
        return self.train(False)

    def zero_grad(self) -> None:
        for p in self.parameters():
            p.zero_grad()

    def freeze(self) -> "Module":
        """Mark every parameter non-trainable (no update, weight gradients may be skipped)."""
        for p in self.parameters():
            p.trainable = False
        return self

    def unfreeze(self) -> "Module":
        for p in self.parameters():
            p.trainable = True
        return self

    def astype(self, dtype) -> "Module":
        """Cast every parameter and floating buffer to ``dtype`` (e.g. float64 for gradcheck)."""
        dtype = np.dtype(dtype)
        for p in self.parameters():
            p.data = p.data.astype(dtype)
            p.grad = np.zeros_like(p.data)
        for _, m in self.named_modules():
            for name in m._buffers:
                v = getattr(m, name)
                if isinstance(v, np.ndarray) and np.issubdtype(v.dtype, np.floating):
                    m._set_buffer(name, v.astype(dtype))
        return self

    # -- state ----------------------------------------------------------------------------------
    def state_dict(self) -> "OrderedDict[str, np.ndarray]":
        """Plain arrays (copies) of every parameter and buffer, keyed by dotted name."""
        state = OrderedDict()
        for name, p in self.named_parameters():
            state[name] = p.data.copy()
        for name, b in self.named_buffers():
            state[name] = np.array(b, copy=True)
        return state

    def check_state_dict(self, state: Dict[str, np.ndarray], strict: bool = True,
                         source: str = "state") -> None:
        """Check that ``state`` fits this model, without changing anything.

        Raises ``KeyError`` for missing/unexpected names (when ``strict``) and ``ValueError``
        naming the first parameter or buffer whose shape or dtype differs, with both values
        ("model has ..., <source> has ...").
        """
        _check_state_arg(state, f"{type(self).__name__}.check_state_dict")
        strict = check_bool(strict, "strict")
        current = OrderedDict((n, p.data) for n, p in self.named_parameters())
        current.update((n, np.asarray(b)) for n, b in self.named_buffers())
        missing = [k for k in current if k not in state]
        unexpected = [k for k in state if k not in current]
        if strict and (missing or unexpected):
            parts = []
            if missing:
                parts.append(f"missing keys {missing[:5]}{' ...' if len(missing) > 5 else ''}")
            if unexpected:
                parts.append(f"unexpected keys {unexpected[:5]}{' ...' if len(unexpected) > 5 else ''}")
            raise KeyError("load_state_dict: " + "; ".join(parts))
        for name, old in current.items():
            if name not in state:
                continue
            new = np.asarray(state[name])
            if new.shape != old.shape:
                raise ValueError(f"shape mismatch for '{name}': model has {old.shape}, "
                                 f"{source} has {new.shape}")
            if new.dtype != old.dtype:
                raise ValueError(f"dtype mismatch for '{name}': model has {old.dtype}, "
                                 f"{source} has {new.dtype}")

    def load_state_dict(self, state: Dict[str, np.ndarray], strict: bool = True) -> None:
        """Copy arrays from ``state`` into parameters and buffers.

        Everything is checked first (``check_state_dict``), so a mismatch never leaves a
        half-loaded model.
        """
        _check_state_arg(state, f"{type(self).__name__}.load_state_dict")
        self.check_state_dict(state, strict)
        targets = OrderedDict((name, ("param", p)) for name, p in self.named_parameters())
        targets.update((name, ("buffer", None)) for name, _ in self.named_buffers())
        modules = dict(self.named_modules())
        for name, (kind, p) in targets.items():
            if name not in state:
                continue
            new = np.array(state[name], copy=True)
            if kind == "param":
                p.data[...] = new
            else:
                owner, _, attr = name.rpartition(".")
                modules[owner]._set_buffer(attr, new)

    # -- printing -------------------------------------------------------------------------------
    def summary(self, input_shape, print_fn=print) -> str:
        """Keras-style table of layers, output shapes and parameter counts (``nnlite.nn.summary``);
        ``input_shape`` with or without the batch axis, e.g. (1, 28, 28) or (None, 1, 28, 28)."""
        from .summary import summary
        return summary(self, input_shape, print_fn=print_fn)

    def extra_repr(self) -> str:
        return ""

    def __repr__(self) -> str:
        head = f"{type(self).__name__}({self.extra_repr()}"
        if not self._modules:
            return head + ")"
        lines = [head]
        for name, child in self._modules.items():
            child_repr = repr(child).replace("\n", "\n  ")
            lines.append(f"  ({name}): {child_repr}")
        return "\n".join(lines) + "\n)"
