"""Thin layer classes over the kernels.

Each layer checks its input at the public entry point (rank, channels, dtype), runs the
kernels of the active storey (``nnlite.kernels``: the engine ``nnlite.fast`` by default, the
textbook ``nnlite.functional`` after ``nnlite.use_kernels("textbook")``), keeps the storey's name
and the kernel's cache between ``forward`` and ``backward`` (``self._cache = (name, cache)``),
and adds parameter gradients into ``Parameter.grad``. A frozen parameter
(``trainable=False``) gets no gradient computed.
"""
from __future__ import annotations

import numpy as np

from .. import functional as F
from .. import kernels
from .._checks import (as_generator, check_backward_ready, check_bool, check_dout, check_finite_vector,
                       check_float_array, check_int, check_real, check_same_dtype, pair)
from ..grad_mode import NO_GRAD_CACHE
from ..init import get_initializer
from .module import Module
from .parameter import Parameter


def _conv_padding(padding, kernel_size, stride):
    """Zero padding (ph, pw) from an int, a pair, "valid" (none) or "same" (stride 1 and odd
    kernels: output size = input size, pad = (k - 1) // 2 on every side, as Keras/PyTorch)."""
    if isinstance(padding, str):
        if padding == "valid":
            return (0, 0)
        if padding == "same":
            if stride != (1, 1) or min(kernel_size) % 2 == 0:
                raise ValueError(f'padding="same" needs stride 1 and odd kernel sizes (symmetric zero '
                                 f'padding), got kernel_size={kernel_size}, stride={stride}')
            return ((kernel_size[0] - 1) // 2, (kernel_size[1] - 1) // 2)
        raise ValueError(f'padding must be an int, a pair, "same" or "valid", got {padding!r}')
    return pair(padding, "padding")


def _window(kernel_size, stride):
    """Validated window geometry: ``(kh, kw), (sh, sw)`` from ints or pairs, all >= 1."""
    kernel_size, stride = pair(kernel_size, "kernel_size"), pair(stride, "stride")
    if min(kernel_size) < 1 or min(stride) < 1:
        raise ValueError(f"kernel_size and stride must be >= 1, got {kernel_size}, {stride}")
    return kernel_size, stride


def _forward_kernels():
    """(name, module) of the active storey, for a layer's forward; the name is kept in the
    layer's cache for its backward (a plain string: models stay copyable and picklable)."""
    name = kernels.active_name()
    return name, kernels.storey(name)


def _is_pending(dout) -> bool:
    """True for the engine's ``PendingGrad`` (an input gradient handed over unwritten)."""
    return isinstance(dout, kernels.storey("fast").PendingGrad)


def _check_pending(dout, shape, who: str):
    """A ``PendingGrad`` of the forward output's ``shape`` (ValueError naming both otherwise)."""
    if dout.shape != tuple(shape):
        raise ValueError(f"{who}.backward: dout must have the forward output's shape "
                         f"{tuple(shape)}, got {dout.shape}")
    return dout


class _Stateless(Module):
    """A layer without parameters whose passes are one kernel pair: subclasses set ``_kernel``
    (e.g. ``"relu"`` for ``relu_forward`` / ``relu_backward`` of the active storey).

    forward: ``out, cache = K.<kernel>_forward(x, *self._fwd_args())`` after checking x is a
    float array (of rank ``_ndim`` when set); backward: ``K.<kernel>_backward(dout, cache)``
    with the same storey K.
    """
    _ndim = None
    _kernel = None

    def _fwd_args(self) -> tuple:
        """Hyper-parameters passed to the forward kernel after x (none by default)."""
        return ()

    def forward(self, x):
        check_float_array(x, "x", ndim=self._ndim)
        name, k = _forward_kernels()
        out, cache = getattr(k, self._kernel + "_forward")(x, *self._fwd_args())
        self._cache = (name, cache)
        self._out_shape = out.shape
        return out

    def backward(self, dout):
        check_backward_ready(self._cache, type(self).__name__)
        check_dout(dout, self._out_shape, type(self).__name__)
        name, cache = self._cache
        return getattr(kernels.storey(name), self._kernel + "_backward")(dout, cache)


class ReLU(_Stateless):
    """y = max(x, 0)."""
    _kernel = "relu"

    def fused_into(self, out):
        """Record that the layer before (a ``Conv2d`` or batch norm, through ``forward_relu``)
        computed this ReLU inside its own kernel and returned ``out``: this layer's next
        ``backward`` passes dout through unchanged, since the fused layer's backward applies
        the ReLU's derivative."""
        self._cache = ("fused", None)
        self._out_shape = out.shape

    def backward(self, dout):
        if self.passes_grad_through():
            if _is_pending(dout):                # a max pool's, for the fused conv before
                return _check_pending(dout, self._out_shape, type(self).__name__)
            return check_dout(dout, self._out_shape, type(self).__name__)
        return super().backward(dout)

    def passes_grad_through(self) -> bool:
        """True when the next ``backward`` returns dout unchanged (see ``fused_into``)."""
        return self._cache is not None and self._cache[0] == "fused"


class ReLU6(_Stateless):
    """y = min(max(x, 0), 6) (MobileNet's activation; the gradient is 0 at both kinks, as PyTorch)."""
    _kernel = "relu6"


class Sigmoid(_Stateless):
    """y = 1 / (1 + exp(-x))."""
    _kernel = "sigmoid"


class Tanh(_Stateless):
    """y = tanh(x)."""
    _kernel = "tanh"


class LeakyReLU(_Stateless):
    """y = x if x > 0 else negative_slope * x."""
    _kernel = "leaky_relu"

    def __init__(self, negative_slope: float = 0.01):
        super().__init__()
        self.negative_slope = check_real(negative_slope, "negative_slope")

    def _fwd_args(self):
        return (self.negative_slope,)

    def extra_repr(self):
        return f"negative_slope={self.negative_slope}"


class Softmax(_Stateless):
    """Softmax along ``axis`` as a layer (backward is the Jacobian-vector product).

    For classification training use ``SoftmaxCrossEntropy`` on logits instead (fused, stable).
    """
    _kernel = "softmax"

    def __init__(self, axis: int = -1):
        super().__init__()
        self.axis = check_int(axis, "axis", minimum=-(2**31))

    def _fwd_args(self):
        return (self.axis,)


class Identity(Module):
    """y = x."""

    def forward(self, x):
        return x

    def backward(self, dout):
        return dout


class Flatten(_Stateless):
    """(N, d1, d2, ...) -> (N, d1*d2*...)."""
    _kernel = "flatten"

    def output_shape(self, input_shape):
        return (input_shape[0], int(np.prod(input_shape[1:])))


class _WeightBias(Module):
    """Shared plumbing of a layer with Parameters ``weight`` and ``bias`` (``bias`` may be None):
    which gradients the kernels must compute, and adding them into ``Parameter.grad``."""

    def _bias_data(self):
        """The bias array, or None for a layer without bias."""
        return None if self.bias is None else self.bias.data

    def _needs_weight_grad(self) -> bool:
        """True when the weight or the bias is trainable (else the kernels skip dW and db)."""
        return self.weight.trainable or (self.bias is not None and self.bias.trainable)

    def _kernel_cache(self, dout, pending_ok: bool = False):
        """(storey module, kernel cache) of the last forward, after checking ``dout`` against the
        forward output; RuntimeError before any forward. ``pending_ok``: dout may also be the
        engine's ``PendingGrad`` of that shape, when the forward ran on the engine."""
        check_backward_ready(self._cache, type(self).__name__)
        name, cache = self._cache
        if pending_ok and name == "fast" and _is_pending(dout):
            _check_pending(dout, self._out_shape, type(self).__name__)
            return kernels.storey(name), cache
        check_dout(dout, self._out_shape, type(self).__name__)
        return kernels.storey(name), cache

    def _accumulate(self, dw, db) -> None:
        """Add ``dw`` (weight's shape) and ``db`` (bias's shape) into the trainable parameters."""
        if self.weight.trainable:
            self.weight.accumulate(dw)
        if self.bias is not None and self.bias.trainable:
            self.bias.accumulate(db)


class Linear(_WeightBias):
    """Dense layer y = x W^T + b.  x: (N, in_features) -> (N, out_features).

    weight: (out_features, in_features) (PyTorch's layout), He-normal by default; bias zeros.
    ``needs_input_grad=False`` (set it on a model's first layer, e.g. the first layer of an
    MLP) skips dx = dout W in backward, which then returns None (see ``Sequential.backward``).
    """

    def __init__(self, in_features: int, out_features: int, bias: bool = True, rng=None,
                 dtype=np.float32, init="he_normal"):
        super().__init__()
        self.in_features = check_int(in_features, "in_features")
        self.out_features = check_int(out_features, "out_features")
        bias = check_bool(bias, "bias")
        self.weight = Parameter(get_initializer(init)((self.out_features, self.in_features),
                                                      as_generator(rng), dtype))
        self.bias = Parameter(np.zeros(self.out_features, dtype=dtype)) if bias else None
        self.needs_input_grad = True

    def forward(self, x):
        check_float_array(x, "x", ndim=2)
        if x.shape[1] != self.in_features:
            raise ValueError(f"Linear expects input of shape (N, {self.in_features}), got {x.shape}")
        check_same_dtype(x, self.weight.data)
        name, k = _forward_kernels()
        out, cache = k.linear_forward(x, self.weight.data, self._bias_data())
        self._cache = (name, cache)
        self._out_shape = out.shape
        return out

    def backward(self, dout):
        """dout: (N, out_features) -> dx: (N, in_features), or None when ``needs_input_grad``
        is False; adds dW, db into the trainable parameters' ``grad``."""
        k, cache = self._kernel_cache(dout)
        dx, dw, db = k.linear_backward(dout, cache, need_weight_grad=self._needs_weight_grad(),
                                       need_input_grad=self.needs_input_grad)
        self._accumulate(dw, db)
        return dx

    def output_shape(self, input_shape):
        return (input_shape[0], self.out_features)

    def extra_repr(self):
        return f"{self.in_features}, {self.out_features}, bias={self.bias is not None}"


class _FusesReLU:
    """Layers whose engine kernel can apply a ReLU to its own output (``relu=True``; the layer's
    ``_forward(x, **fused)`` passes it on): on the engine storey ``Sequential`` runs such a layer
    and a ``ReLU`` right after it as one kernel (see ``Sequential.forward``). Classes set
    ``_plain_methods``: the (forward, backward) that fusion stands in for."""
    _plain_methods = ()

    def fuses_relu(self) -> bool:
        """True when this layer's class keeps the plain ``forward`` and ``backward`` (a subclass
        overriding either runs its own code, unfused)."""
        return (type(self).forward, type(self).backward) == self._plain_methods

    def forward_relu(self, x):
        """relu(self.forward(x)) as one engine kernel (the ReLU applied while each chunk of the
        output is in cache); the matching ``backward`` then includes the ReLU's derivative, and
        the caller marks the ``ReLU`` layer it replaced with ``ReLU.fused_into``. Engine storey only."""
        if kernels.active_name() != "fast":
            raise RuntimeError("forward_relu needs the engine kernels (nnlite.use_kernels('fast'))")
        return self._forward(x, relu=True)


class _Conv(_WeightBias):
    """The plumbing the convolution layers share: weight and bias, the input check, the kernel pair
    of the active storey (``<_kernel>_forward(x, w, b, *self._geometry())`` and
    ``<_kernel>_backward(dout, cache, need_input_grad, need_weight_grad)``), ``needs_input_grad``.
    Subclasses set ``_kernel``, call ``_init_conv`` and define ``_geometry`` and ``output_shape``."""
    _kernel = None

    def _init_conv(self, in_channels: int, out_channels: int, weight_shape, kernel_size, stride, bias,
                   rng, dtype, init):
        """weight_shape(in_channels, out_channels) -> the weight's leading two dimensions."""
        self.in_channels = check_int(in_channels, "in_channels")
        self.out_channels = check_int(out_channels, "out_channels")
        bias = check_bool(bias, "bias")
        self.kernel_size, self.stride = _window(kernel_size, stride)
        shape = weight_shape(self.in_channels, self.out_channels) + self.kernel_size
        self.weight = Parameter(get_initializer(init)(shape, as_generator(rng), dtype))
        self.bias = Parameter(np.zeros(self.out_channels, dtype=dtype)) if bias else None
        self.needs_input_grad = True

    def _geometry(self) -> tuple:
        raise NotImplementedError

    def forward(self, x):
        return self._forward(x)

    def _forward(self, x, **fused):
        """forward, with the engine kernel's ``fused`` options (e.g. ``relu=True``) if any."""
        check_float_array(x, "x", ndim=4)
        if x.shape[1] != self.in_channels:
            raise ValueError(f"{type(self).__name__} expects {self.in_channels} input channels "
                             f"(N, {self.in_channels}, H, W), got shape {x.shape}")
        check_same_dtype(x, self.weight.data)
        name, k = _forward_kernels()
        out, cache = getattr(k, self._kernel + "_forward")(x, self.weight.data, self._bias_data(), *self._geometry(),
                                                           **fused)
        self._cache = (name, cache)
        self._out_shape = out.shape
        return out

    def backward(self, dout):
        """dout: (N, out_channels, Ho, Wo) -> dx: x's shape, or None when ``needs_input_grad``
        is False; adds dW, db into the trainable parameters' ``grad``. ``Conv2d`` on the
        engine also takes the ``PendingGrad`` of a batch norm or max pool after it (see ``Sequential.backward``)."""
        k, cache = self._kernel_cache(dout, pending_ok=self._kernel == "conv2d")
        dx, dw, db = getattr(k, self._kernel + "_backward")(dout, cache, need_input_grad=self.needs_input_grad,
                                                            need_weight_grad=self._needs_weight_grad())
        self._accumulate(dw, db)
        return dx


class Conv2d(_FusesReLU, _Conv):
    """2-D convolution over NCHW input via im2col + one GEMM.

    x: (N, in_channels, H, W) -> (N, out_channels, Ho, Wo), Ho = (H + 2p - k) // s + 1.
    padding: int, (ph, pw), "valid" (0) or "same" (stride 1, odd kernel: Ho = H).
    weight: (out_channels, in_channels, kh, kw), He-normal (fan_in = C_in*kh*kw); bias zeros.
    ``needs_input_grad=False`` (set it on a model's first layer) skips the input gradient
    (dx) in backward, which then returns None.
    """
    _kernel = "conv2d"
    _plain_methods = (_Conv.forward, _Conv.backward)

    def __init__(self, in_channels: int, out_channels: int, kernel_size, stride=1, padding=0,
                 bias: bool = True, rng=None, dtype=np.float32, init="he_normal"):
        super().__init__()
        self._init_conv(in_channels, out_channels, lambda i, o: (o, i), kernel_size, stride, bias, rng, dtype, init)
        self.padding = _conv_padding(padding, self.kernel_size, self.stride)

    def _geometry(self):
        return self.stride, self.padding

    def forward_maxpool(self, x, pool: "MaxPool2d", relu: bool = False):
        """``pool.forward(relu(self.forward(x)))`` (the ReLU only if ``relu``) as one engine
        kernel, for forwards no backward follows (what ``Sequential`` runs under
        ``nnlite.no_grad()``): each chunk of the conv's output is pooled while in cache, and the
        whole output is never written; bit-identical results. Both layers then keep no cache:
        their ``backward`` raises until the next ordinary forward. Engine storey only."""
        if kernels.active_name() != "fast":
            raise RuntimeError("forward_maxpool runs on the engine storey only (the textbook storey never fuses)")
        out = self._forward(x, relu=relu, maxpool=(pool.kernel_size, pool.stride))
        self._cache = pool._cache = NO_GRAD_CACHE
        self._out_shape, pool._out_shape = None, out.shape
        return out

    def takes_pending_grad(self) -> bool:
        """True when this layer's next ``backward`` can take a ``PendingGrad`` (a batch norm's or a max pool's):
        its class keeps the plain methods (``fuses_relu``) and its last forward ran on the
        engine (see ``Sequential.backward``)."""
        return self.fuses_relu() and self._cache is not None and self._cache[0] == "fast"

    def output_shape(self, input_shape):
        n, _, h, w = input_shape
        return (n, self.out_channels,
                F.conv_output_size(h, self.kernel_size[0], self.stride[0], self.padding[0]),
                F.conv_output_size(w, self.kernel_size[1], self.stride[1], self.padding[1]))

    def extra_repr(self):
        return (f"{self.in_channels}, {self.out_channels}, kernel_size={self.kernel_size}, "
                f"stride={self.stride}, padding={self.padding}")


class DepthwiseConv2d(_Conv):
    """Depthwise 2-D convolution: each of the ``channels`` input channels is filtered on its own by
    ``multiplier`` filters (PyTorch's ``Conv2d(channels, channels*multiplier, k, groups=channels)``).

    x: (N, channels, H, W) -> (N, channels*multiplier, Ho, Wo), Ho = (H + 2p - k) // s + 1; output
    channel c*multiplier + k reads input channel c. padding: int, (ph, pw), "valid" or "same".
    weight: (channels*multiplier, 1, kh, kw) (PyTorch's layout), He-normal with fan_in = kh*kw (the
    inputs one output sees; the same rule as Conv2d's C_in*kh*kw, with one input channel per
    filter, and as PyTorch computes it for groups=C); bias zeros. A DepthwiseConv2d followed by a
    1x1 Conv2d is a depthwise-separable convolution. ``needs_input_grad=False`` skips dx in backward.
    """
    _kernel = "depthwise_conv2d"

    def __init__(self, channels: int, kernel_size, stride=1, padding=0, multiplier: int = 1,
                 bias: bool = True, rng=None, dtype=np.float32, init="he_normal"):
        super().__init__()
        self.multiplier = check_int(multiplier, "multiplier")
        self._init_conv(channels, check_int(channels, "channels") * self.multiplier, lambda i, o: (o, 1),
                        kernel_size, stride, bias, rng, dtype, init)
        self.channels = self.in_channels
        self.padding = _conv_padding(padding, self.kernel_size, self.stride)

    _geometry = Conv2d._geometry
    output_shape = Conv2d.output_shape          # the same geometry: out_channels, kernel_size, stride, padding

    def extra_repr(self):
        return (f"{self.channels}, kernel_size={self.kernel_size}, stride={self.stride}, "
                f"padding={self.padding}, multiplier={self.multiplier}")


class _Pool(_Stateless):
    """Window pooling over (N, C, H, W); ``stride`` defaults to ``kernel_size``."""
    _ndim = 4

    def __init__(self, kernel_size=2, stride=None):
        super().__init__()
        self.kernel_size, self.stride = _window(kernel_size, kernel_size if stride is None else stride)

    def _fwd_args(self):
        return (self.kernel_size, self.stride)

    def output_shape(self, input_shape):
        n, c, h, w = input_shape
        return (n, c, F.conv_output_size(h, self.kernel_size[0], self.stride[0], 0),
                F.conv_output_size(w, self.kernel_size[1], self.stride[1], 0))

    def extra_repr(self):
        return f"kernel_size={self.kernel_size}, stride={self.stride}"


class MaxPool2d(_Pool):
    """Max pooling (N, C, H, W) -> (N, C, Ho, Wo); the gradient goes to each window's first maximum."""
    _kernel = "maxpool2d"

    def has_plain_methods(self) -> bool:
        """True when this layer's class keeps the plain ``forward`` and ``backward`` (a subclass
        overriding either runs its own code and is never fused)."""
        return type(self).forward is _Stateless.forward and type(self).backward is _Stateless.backward

    def gives_pending_grad(self) -> bool:
        """True when ``backward_pending`` can run: this layer's class keeps the plain forward
        and backward and its last forward ran on the engine (see ``Sequential.backward``)."""
        return self.has_plain_methods() and self._cache is not None and self._cache[0] == "fast"

    def backward_pending(self, dout):
        """``backward``, but dx may come back unwritten, as the engine's ``PendingGrad``, for the
        ``Conv2d`` before this layer (a fused ``ReLU`` may sit between) to consume: its backward
        computes dx's rows chunk by chunk (``nnlite.fast.pool.MaxPoolPendingGrad``). Engine
        storey only."""
        if not self.gives_pending_grad():
            raise RuntimeError("backward_pending needs a forward on the engine kernels and the "
                               "class's plain forward and backward")
        check_dout(dout, self._out_shape, type(self).__name__)
        return kernels.storey("fast").maxpool2d_backward(dout, self._cache[1], pending=True)


class AvgPool2d(_Pool):
    """Average pooling (N, C, H, W) -> (N, C, Ho, Wo)."""
    _kernel = "avgpool2d"


class GlobalAvgPool2d(_Stateless):
    """(N, C, H, W) -> (N, C): the mean over all spatial positions."""
    _ndim = 4
    _kernel = "global_avgpool"

    def output_shape(self, input_shape):
        return tuple(input_shape[:2])


class _BatchNorm(_FusesReLU, _WeightBias):
    """Batch normalization; see ``nnlite.functional.batchnorm`` for the math.

    momentum follows PyTorch: running = (1 - momentum) * running + momentum * batch_stat
    (unbiased batch variance), default 0.1. Backward works in training and eval mode.
    """
    _rank = None

    def __init__(self, num_features: int, eps: float = 1e-5, momentum: float = 0.1,
                 dtype=np.float32):
        super().__init__()
        num_features = check_int(num_features, "num_features")
        self.eps = check_real(eps, "eps", lo=0.0, lo_open=True)
        self.momentum = check_real(momentum, "momentum", lo=0.0, hi=1.0)
        self.num_features = num_features
        self.weight = Parameter(np.ones(num_features, dtype=dtype))    # gamma
        self.bias = Parameter(np.zeros(num_features, dtype=dtype))     # beta
        self.register_buffer("running_mean", np.zeros(num_features, dtype=dtype))
        self.register_buffer("running_var", np.ones(num_features, dtype=dtype))

    def forward(self, x):
        return self._forward(x)

    def _forward(self, x, **fused):
        """forward, with the engine kernel's ``fused`` options (``relu=True``) if any."""
        check_float_array(x, "x", ndim=self._rank)
        if x.shape[1] != self.num_features:
            raise ValueError(f"{type(self).__name__} expects {self.num_features} features on axis 1, "
                             f"got shape {x.shape}")
        check_same_dtype(x, self.weight.data)
        if self.training and x.size // x.shape[1] < 2:
            raise ValueError(f"{type(self).__name__} in training mode needs more than one value "
                             f"per feature, got input of shape {x.shape}")
        name, k = _forward_kernels()
        out, cache = k.batchnorm_forward(x, self.weight.data, self.bias.data, self.training,
                                         self.running_mean, self.running_var, self.eps, **fused)
        self._cache = (name, cache)
        self._out_shape = out.shape
        if self.training:
            mean, var = F.batchnorm_running_update(self.running_mean, self.running_var,
                                                   cache, self.momentum)
            self._set_buffer("running_mean", mean)
            self._set_buffer("running_var", var)
        return out

    def backward(self, dout):
        """dout: x's shape -> dx; adds dgamma, dbeta into the trainable parameters' ``grad``."""
        return self._backward(dout)

    def _backward(self, dout, **pending):
        k, cache = self._kernel_cache(dout)
        dx, dgamma, dbeta = k.batchnorm_backward(dout, cache, need_weight_grad=self._needs_weight_grad(),
                                                 **pending)
        self._accumulate(dgamma, dbeta)
        return dx

    def gives_pending_grad(self) -> bool:
        """True when ``backward_pending`` can run: this layer's class keeps the plain methods
        (``fuses_relu``) and its last forward ran on the engine (see ``Sequential.backward``)."""
        return self.fuses_relu() and self._cache is not None and self._cache[0] == "fast"

    def backward_pending(self, dout):
        """``backward``, but dx may come back unwritten, as the engine's ``PendingGrad``, for the
        ``Conv2d`` before this layer to consume (``Sequential.backward`` pairs them; the engine
        kernel decides, see ``nnlite.fast.batchnorm``). Engine storey only."""
        if not self.gives_pending_grad():
            raise RuntimeError("backward_pending needs a forward on the engine kernels and the "
                               "class's plain forward and backward")
        return self._backward(dout, pending=True)

    def output_shape(self, input_shape):
        return tuple(input_shape)

    def extra_repr(self):
        return f"{self.num_features}, eps={self.eps}, momentum={self.momentum}"

    _plain_methods = (forward, backward)


class BatchNorm1d(_BatchNorm):
    """Batch norm over (N, D): statistics per feature over the batch."""
    _rank = 2


class BatchNorm2d(_BatchNorm):
    """Batch norm over (N, C, H, W): statistics per channel over (N, H, W)."""
    _rank = 4


class Dropout(Module):
    """Inverted dropout; ``p`` is the probability of DROPPING a unit (PyTorch's convention).

    Training: y = x * mask / (1 - p), mask ~ Bernoulli(1 - p) drawn from the layer's own
    Generator ``self.rng`` (pass ``rng`` for reproducibility). Eval: y = x.
    """

    def __init__(self, p: float = 0.5, rng=None):
        super().__init__()
        self.p = check_real(p, "dropout p (drop probability)", lo=0.0, hi=1.0, hi_open=True)
        self.rng = as_generator(rng)

    def forward(self, x):
        check_float_array(x, "x")
        out, self._cache = F.dropout_forward(x, self.p, self.rng, self.training)
        self._out_shape = out.shape
        return out

    def backward(self, dout):
        # the kernel's cache is None in eval mode: the recorded output shape says forward ran
        check_backward_ready(self._out_shape, type(self).__name__)
        check_dout(dout, self._out_shape, type(self).__name__)
        return F.dropout_backward(dout, self._cache)

    def output_shape(self, input_shape):
        return tuple(input_shape)

    def extra_repr(self):
        return f"p={self.p}"


class Normalize(Module):
    """Per-channel standardization inside the model: y = (x - mean) / std.

    Keeps models taking images in [0, 1] so attack budgets stay in pixel units.
    mean, std: (C,) buffers (saved with the weights, never trained). x: (N, C, H, W) or (N, C).
    """

    def __init__(self, mean, std, dtype=np.float32):
        super().__init__()
        mean = check_finite_vector(mean, "mean", dtype=dtype)
        std = check_finite_vector(std, "std", positive=True, dtype=dtype)
        if mean.shape != std.shape:
            raise ValueError(f"mean and std must have the same length, got {mean.shape} and {std.shape}")
        self.register_buffer("mean", mean)
        self.register_buffer("std", std)

    def _bshape(self, x):
        return (1, -1) + (1,) * (x.ndim - 2)

    def forward(self, x):
        check_float_array(x, "x", ndim=(2, 4))
        if x.shape[1] != self.mean.size:
            raise ValueError(f"Normalize expects {self.mean.size} channels on axis 1, got shape {x.shape}")
        check_same_dtype(x, self.mean, what="the normalization statistics")
        self._cache = x.ndim
        self._out_shape = x.shape
        return (x - self.mean.reshape(self._bshape(x))) / self.std.reshape(self._bshape(x))

    def backward(self, dout):
        check_backward_ready(self._cache, type(self).__name__)
        check_dout(dout, self._out_shape, type(self).__name__)
        return dout / self.std.reshape(self._bshape(dout))

    def output_shape(self, input_shape):
        return tuple(input_shape)
