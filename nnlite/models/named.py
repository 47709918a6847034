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
        """Output of the child (or nested child, dotted ``"block5.pool"``) called ``name``."""
        head, _, rest = name.partition(".")
        if head not in self._modules:
            raise KeyError(f"no layer named {head!r}; layers are {self.names}")
        for key, layer in self._modules.items():
            if key == head:
                if rest:
                    if not isinstance(layer, Blocks):
                        raise KeyError(f"'{head}' is a {type(layer).__name__}, cannot reach '{rest}' inside it")
                    return layer.forward_until(x, rest)
                return layer.forward(x)
            x = layer.forward(x)
        raise AssertionError("unreachable")

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
