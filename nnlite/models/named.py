"""`Blocks`: a sequential container whose children have names (``block1``, ``conv1``, ...).

Names make transfer learning readable: parameters read ``block3.conv2.weight``, a Keras layer
``block3_conv2`` maps to the module ``block3.conv2``, and ``freeze(model, up_to="block3")``
names what it freezes.

Two behaviours differ from ``nnlite.nn.Sequential``:

* a child whose parameters are ALL frozen runs in inference mode during training (batch norm
  uses and keeps its running statistics, dropout is off), as Keras does for ``trainable=False``
  (``frozen_inference=True``, the default);
* with ``needs_input_grad=False`` (the builders set it on the whole model, whose input is the
  data) backward stops as soon as every earlier child is frozen, so a frozen stem costs no
  backward pass at all; it then returns None.
"""
from __future__ import annotations

from collections import OrderedDict

from ..nn.module import Module


def _fully_frozen(m: Module) -> bool:
    """True when ``m`` has parameters and none is trainable."""
    params = m.parameters()
    return bool(params) and not any(p.trainable for p in params)


def _no_trainable(m: Module) -> bool:
    return not any(p.trainable for p in m.parameters())


class _Reached(Exception):
    """Carries the output of the module ``Blocks.forward_until`` waits for out of the forward pass."""


class Blocks(Module):
    """Named chain of modules: forward in order, backward in reverse.

    layers: an ordered mapping or a list of ``(name, module)`` pairs (names are identifiers
    without dots). ``model.block3`` / ``model["block3"]`` give a child.
    """

    def __init__(self, layers, frozen_inference: bool = True):
        super().__init__()
        items = list(layers.items()) if isinstance(layers, (dict, OrderedDict)) else list(layers)
        for i, item in enumerate(items):
            if not (isinstance(item, tuple) and len(item) == 2):
                raise TypeError(f"Blocks item {i} must be a (name, Module) pair, got {type(item).__name__}")
            name, layer = item
            if not isinstance(name, str) or not name.isidentifier():
                raise ValueError(f"Blocks item {i}: name must be an identifier without dots, got {name!r}")
            if not isinstance(layer, Module):
                raise TypeError(f"Blocks item {i} ('{name}') must be a Module, got {type(layer).__name__}")
            if name in self._modules:
                raise ValueError(f"Blocks: duplicate name {name!r}")
            setattr(self, name, layer)
        object.__setattr__(self, "frozen_inference", bool(frozen_inference))
        object.__setattr__(self, "needs_input_grad", True)

    @property
    def names(self):
        return list(self._modules)

    def __getitem__(self, key):
        if isinstance(key, int):
            return list(self._modules.values())[key]
        try:
            return self._modules[key]
        except KeyError:
            raise KeyError(f"no block named {key!r}; blocks are {self.names}") from None

    def __len__(self):
        return len(self._modules)

    def __iter__(self):
        return iter(self._modules.values())

    def forward(self, x):
        for layer in self._modules.values():
            if self.training and self.frozen_inference and _fully_frozen(layer):
                saved = [(m, m.training) for _, m in layer.named_modules()]
                layer.train(False)
                try:
                    x = layer.forward(x)
                finally:
                    for m, flag in saved:
                        object.__setattr__(m, "training", flag)
            else:
                x = layer.forward(x)
        return x

    def forward_until(self, x, name: str):
        """Output of the module called ``name`` when the model runs on ``x``: a child (``"block5"``)
        or any nested module of ``named_modules()`` (``"block5.pool"``, also inside a ``Residual``:
        ``"block2.unit2.block.depthwise"``). That module's ``forward`` is wrapped for one call (its
        first, if it is used twice), whose result ends the pass: nothing after it runs."""
        target = dict(self.named_modules()).get(name) if name else None
        if target is None:
            raise KeyError(f"no layer named {name!r}; top-level layers are {self.names} "
                           "(dotted names reach inside them)")
        inner = target.forward

        def capture(*a, **kw):
            raise _Reached(inner(*a, **kw))
        object.__setattr__(target, "forward", capture)
        try:
            self.forward(x)
        except _Reached as reached:
            return reached.args[0]
        finally:
            del target.__dict__["forward"]
        raise RuntimeError(f"layer {name!r} is not called by the model's forward pass")

    def backward(self, dout):
        layers = list(self._modules.values())
        for i in range(len(layers) - 1, -1, -1):
            if not self.needs_input_grad and all(_no_trainable(m) for m in layers[:i + 1]):
                return None
            dout = layers[i].backward(dout)
            if dout is None:
                return None
        return dout

    def output_shape(self, input_shape):
        for layer in self._modules.values():
            input_shape = layer.output_shape(input_shape)
        return tuple(input_shape)
