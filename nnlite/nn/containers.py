"""Containers: ``Sequential``, ``ModuleList`` and the ``Residual`` block."""
from __future__ import annotations

import numpy as np

from .. import kernels
from ..grad_mode import NO_GRAD_CACHE, is_grad_enabled
from .layers import BatchNorm2d, Conv2d, Identity, MaxPool2d, ReLU, _BatchNorm
from .module import Module


class Sequential(Module):
    """Chain of modules: forward left to right, backward right to left.

    Children are named "0", "1", ... so parameters read ``"3.weight"`` in ``named_parameters``.
    """
    #: whether the last forward ran under ``nnlite.no_grad()`` (``backward`` then refuses)
    _forward_no_grad = False
    _forward_state = Module._forward_state + ("_forward_no_grad",)

    def __init__(self, *layers):
        super().__init__()
        if len(layers) == 1 and isinstance(layers[0], (list, tuple)):
            layers = tuple(layers[0])
        for i, layer in enumerate(layers):
            if not isinstance(layer, Module):
                raise TypeError(f"Sequential item {i} must be a Module, got {type(layer).__name__}")
            setattr(self, str(i), layer)

    @property
    def layers(self):
        return list(self._modules.values())

    def __len__(self):
        return len(self._modules)

    def __getitem__(self, i):
        if isinstance(i, slice):
            return Sequential(*self.layers[i])
        return self.layers[i]

    def __iter__(self):
        return iter(self.layers)

    def append(self, layer: Module) -> "Sequential":
        setattr(self, str(len(self)), layer)
        return self

    def forward(self, x):
        """Each layer's forward, left to right. On the engine storey a layer whose
        ``fuses_relu()`` holds (``Conv2d``, ``BatchNorm1d/2d``, unless a subclass overrides
        their forward or backward) followed by a ``ReLU`` runs as one
        kernel (``forward_relu``: the ReLU applied to each in-cache chunk of the output;
        bit-identical results, see ``nnlite.fast.conv`` and ``nnlite.fast.batchnorm``) unless
        ``nnlite.fast.FUSE_RELU`` is False. Under ``nnlite.no_grad()`` a ``Conv2d``, an
        optional ``ReLU`` and a ``MaxPool2d`` (plain classes) run as one kernel
        (``Conv2d.forward_maxpool``) unless ``nnlite.fast.FUSE_POOL_NO_GRAD`` is False, and
        ``backward`` then refuses to run."""
        layers = list(self._modules.values())
        engine = kernels.active_name() == "fast"
        fuse = engine and kernels.storey("fast").FUSE_RELU
        no_grad = not is_grad_enabled()
        fuse_pool = no_grad and engine and kernels.storey("fast").FUSE_POOL_NO_GRAD
        object.__setattr__(self, "_forward_no_grad", no_grad)
        i = 0
        while i < len(layers):
            layer = layers[i]
            pooled = self._pool_after_conv(layers, i) if fuse_pool else None
            if pooled is not None:
                x = layer.forward_maxpool(x, layers[pooled], relu=pooled == i + 2)
                if pooled == i + 2:
                    layers[i + 1]._cache = NO_GRAD_CACHE
                i = pooled + 1
            elif fuse and i + 1 < len(layers) and type(layers[i + 1]) is ReLU \
                    and hasattr(layer, "fuses_relu") and layer.fuses_relu():
                x = layer.forward_relu(x)
                layers[i + 1].fused_into(x)
                i += 2
            else:
                x = layer.forward(x)
                i += 1
        return x

    @staticmethod
    def _pool_after_conv(layers, i):
        """Index of the ``MaxPool2d`` that follows the ``Conv2d`` at i directly or after one
        ``ReLU`` (all with their plain methods), else None."""
        if not (isinstance(layers[i], Conv2d) and layers[i].fuses_relu()):
            return None
        j = i + 2 if i + 1 < len(layers) and type(layers[i + 1]) is ReLU else i + 1
        if j < len(layers) and isinstance(layers[j], MaxPool2d) and layers[j].has_plain_methods():
            return j
        return None

    def backward(self, dout):
        """Backward right to left. A layer that skips its input gradient (``Conv2d`` or
        ``Linear`` with ``needs_input_grad=False``) returns None; propagation stops there
        (layers before it must then have no trainable parameters) and None is returned.
        On the engine storey a batch norm right after a ``Conv2d`` (both with their plain
        methods) hands the conv its input gradient unwritten (``backward_pending``): the conv's
        backward computes its rows chunk by chunk (bit-identical results, see
        ``nnlite.fast.pending.PendingGrad``) unless ``nnlite.fast.FUSE_BN_INTO_CONV`` is False;
        likewise a max pool after a ``Conv2d`` (a ``ReLU`` fused into the conv may sit between)
        unless ``nnlite.fast.FUSE_POOL_INTO_CONV`` is False. After a forward under
        ``nnlite.no_grad()``: RuntimeError, before any layer runs (nothing is accumulated)."""
        if self._forward_no_grad:
            raise RuntimeError("Sequential.backward after a forward under nnlite.no_grad(), which kept "
                               "nothing for a backward: run the forward again outside no_grad()")
        layers = list(self._modules.values())
        for i in range(len(layers) - 1, -1, -1):
            layer = layers[i]
            if self._hands_pending_grad(layers, i):
                dout = layer.backward_pending(dout)
            else:
                dout = layer.backward(dout)
            if dout is None:
                return None
        return dout

    @staticmethod
    def _hands_pending_grad(layers, i) -> bool:
        """True when layer i hands its input gradient unwritten to the ``Conv2d`` before it:
        a batch norm right after the conv (``FUSE_BN_INTO_CONV``), or a max pool after it or
        after the ``ReLU`` fused into it (``FUSE_POOL_INTO_CONV``); each with its plain methods
        and its last forward on the engine."""
        engine = kernels.storey("fast")
        layer = layers[i]
        if isinstance(layer, _BatchNorm):
            if not (engine.FUSE_BN_INTO_CONV and layer.gives_pending_grad()):
                return False
        elif isinstance(layer, MaxPool2d):
            if not (engine.FUSE_POOL_INTO_CONV and layer.gives_pending_grad()):
                return False
            if i > 0 and type(layers[i - 1]) is ReLU and layers[i - 1].passes_grad_through():
                i -= 1
        else:
            return False
        return i > 0 and isinstance(layers[i - 1], Conv2d) and layers[i - 1].takes_pending_grad()

    def output_shape(self, input_shape):
        for layer in self._modules.values():
            input_shape = layer.output_shape(input_shape)
        return tuple(input_shape)


class ModuleList(Module):
    """A list of modules whose parameters are registered (named "0", "1", ...), for models that
    call their parts in their own ``forward``/``backward`` (as ``torch.nn.ModuleList``).

    It has no forward of its own: iterate over it, index it, ``append`` to it.
    """

    def __init__(self, modules=()):
        super().__init__()
        for m in modules:
            self.append(m)

    def append(self, module: Module) -> "ModuleList":
        if not isinstance(module, Module):
            raise TypeError(f"ModuleList item {len(self)} must be a Module, got {type(module).__name__}")
        setattr(self, str(len(self)), module)
        return self

    def __len__(self):
        return len(self._modules)

    def __getitem__(self, i):
        return list(self._modules.values())[i]

    def __iter__(self):
        return iter(list(self._modules.values()))

    def forward(self, x):
        raise NotImplementedError("ModuleList has no forward: call its modules in your model's forward")

    def backward(self, dout):
        raise NotImplementedError("ModuleList has no backward: call its modules in your model's backward")


class Residual(Module):
    """out = block(x) + shortcut(x); backward sends dout through both branches and sums.

    ``shortcut`` is the identity by default; use ``projection_shortcut`` (1x1 conv + batch norm)
    when the block changes the channel count or stride. Put a ReLU after the block in a
    ``Sequential`` for the classic ResNet ``relu(F(x) + x)``, or use ``basic_block``.
    """

    def __init__(self, block: Module, shortcut: Module | None = None):
        super().__init__()
        self.block = block
        self.shortcut = shortcut if shortcut is not None else Identity()

    def forward(self, x):
        main = self.block.forward(x)
        side = self.shortcut.forward(x)
        if main.shape != side.shape:
            raise ValueError(f"Residual branches disagree: block gives {main.shape}, shortcut gives "
                             f"{side.shape}; use a projection shortcut (projection_shortcut)")
        return main + side

    def backward(self, dout):
        return self.block.backward(dout) + self.shortcut.backward(dout)

    def output_shape(self, input_shape):
        return self.block.output_shape(input_shape)


def projection_shortcut(in_channels, out_channels, stride=1, rng=None, dtype=np.float32):
    """1x1 convolution (with ``stride``, no bias) followed by batch norm."""
    return Sequential(Conv2d(in_channels, out_channels, 1, stride=stride, bias=False, rng=rng, dtype=dtype),
                      BatchNorm2d(out_channels, dtype=dtype))


def basic_block(in_channels, out_channels, stride=1, rng=None, dtype=np.float32):
    """ResNet basic block: relu( bn(conv3x3(relu(bn(conv3x3(x))))) + shortcut(x) ).

    The shortcut is the identity when shapes agree, else a 1x1-conv + batch-norm projection.
    """
    block = Sequential(
        Conv2d(in_channels, out_channels, 3, stride=stride, padding=1, bias=False, rng=rng, dtype=dtype),
        BatchNorm2d(out_channels, dtype=dtype), ReLU(),
        Conv2d(out_channels, out_channels, 3, padding=1, bias=False, rng=rng, dtype=dtype),
        BatchNorm2d(out_channels, dtype=dtype))
    shortcut = None
    if stride != 1 or in_channels != out_channels:
        shortcut = projection_shortcut(in_channels, out_channels, stride, rng, dtype)
    return Sequential(Residual(block, shortcut), ReLU())
