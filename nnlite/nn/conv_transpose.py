"""``ConvTranspose2d``: the learnable upsampling layer of decoders.

Kernels of the active storey (``nnlite.kernels``): ``nnlite.functional.conv_transpose2d_*``
(textbook: the convolution's input gradient as a forward pass, via im2col/col2im) or
``nnlite.fast.conv_transpose2d_*`` (the engine conv's input-gradient path). The storey's name is
kept with the cache, so backward uses the forward's storey.
"""
from __future__ import annotations

import numpy as np

from .._checks import pair
from ..functional.conv_transpose import conv_transpose_output_size
from .layers import _Conv


class ConvTranspose2d(_Conv):
    """Transposed 2-D convolution, PyTorch's ``nn.ConvTranspose2d`` without groups/dilation.

    x: (N, in_channels, H, W) -> (N, out_channels, Ho, Wo), Ho = (H - 1)*s - 2p + k + output_padding.
    weight: (in_channels, out_channels, kh, kw) (PyTorch's layout), He-normal with the
    initializer's fan_in = out_channels*kh*kw (as PyTorch computes it for this layout); bias zeros.
    output_padding in [0, stride): e.g. kernel 3, stride 2, padding 1, output_padding 1 doubles
    the size exactly (7 -> 14 -> 28), inverting the shape of Conv2d(3, stride=2, padding=1).
    ``needs_input_grad=False`` skips dx in backward (which then returns None).
    """

    _kernel = "conv_transpose2d"

    def __init__(self, in_channels: int, out_channels: int, kernel_size, stride=1, padding=0,
                 output_padding=0, bias: bool = True, rng=None, dtype=np.float32, init="he_normal"):
        super().__init__()
        self._init_conv(in_channels, out_channels, lambda i, o: (i, o), kernel_size, stride, bias, rng, dtype, init)
        self.padding = pair(padding, "padding")
        self.output_padding = pair(output_padding, "output_padding")
        for op, s in zip(self.output_padding, self.stride):
            if op >= s:
                raise ValueError(f"output_padding must be smaller than stride, got output_padding="
                                 f"{self.output_padding} with stride={self.stride}")

    def _geometry(self):
        return self.stride, self.padding, self.output_padding

    def output_shape(self, input_shape):
        n, _, h, w = input_shape
        return (n, self.out_channels,
                conv_transpose_output_size(h, self.kernel_size[0], self.stride[0], self.padding[0],
                                           self.output_padding[0]),
                conv_transpose_output_size(w, self.kernel_size[1], self.stride[1], self.padding[1],
                                           self.output_padding[1]))

    def extra_repr(self):
        return (f"{self.in_channels}, {self.out_channels}, kernel_size={self.kernel_size}, "
                f"stride={self.stride}, padding={self.padding}, output_padding={self.output_padding}")
