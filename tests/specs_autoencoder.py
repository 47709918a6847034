"""Gradient-check rows of the autoencoder storey (issue 16): transposed convolution, upsampling,
reshape layers, the BCE-on-probabilities loss and small autoencoders built from them."""

import nnlite.nn as nn
from nnlite import losses
from nnlite.models.autoencoder import conv_autoencoder, dense_autoencoder

from specs import LayerSpec, LossSpec, normal


def convt(cin, cout, k, stride=1, pad=0, out_pad=0, bias=True):
    return lambda rng, dtype: nn.ConvTranspose2d(cin, cout, k, stride=stride, padding=pad, output_padding=out_pad,
                                                 bias=bias, rng=rng, dtype=dtype)


def with_input_grad(ae):
    """The builders skip the image gradient of the first layer; the table checks it too."""
    for m in ae.encoder:
        if hasattr(m, "needs_input_grad"):
            m.needs_input_grad = True
    return ae


LAYER_SPECS = [
    LayerSpec("convT3x3_s1_p0", convt(3, 4, 3), normal(2, 3, 4, 5)),
    LayerSpec("convT3x3_s1_p1_nobias", convt(2, 3, 3, 1, 1, bias=False), normal(2, 2, 5, 4)),
    LayerSpec("convT3x3_s2_p1_op1", convt(3, 2, 3, 2, 1, 1), normal(2, 3, 4, 3)),
    LayerSpec("convT4x4_s2_p1", convt(2, 3, 4, 2, 1), normal(2, 2, 3, 4)),
    LayerSpec("convT_rect_s23_op", lambda r, d: nn.ConvTranspose2d(2, 3, (2, 3), stride=(2, 3), padding=(1, 0),
                                                                  output_padding=(1, 2), rng=r, dtype=d),
              normal(2, 2, 3, 4)),
    LayerSpec("upsample_nearest_x2", lambda r, d: nn.Upsample(2, "nearest"), normal(2, 3, 3, 4)),
    LayerSpec("upsample_nearest_x1.5", lambda r, d: nn.Upsample(1.5, "nearest"), normal(2, 2, 4, 5)),
    LayerSpec("upsample_bilinear_x2", lambda r, d: nn.Upsample(2, "bilinear"), normal(2, 3, 3, 4)),
    LayerSpec("upsample_bilinear_x2.5_x1.3", lambda r, d: nn.Upsample((2.5, 1.3), "bilinear"), normal(2, 2, 3, 5)),
    LayerSpec("upsample_bilinear_size", lambda r, d: nn.Upsample(mode="bilinear", size=(7, 3)), normal(2, 2, 3, 5)),
    LayerSpec("reshape", lambda r, d: nn.Reshape((2, 3, 2)), normal(3, 12)),
    LayerSpec("unflatten", lambda r, d: nn.Unflatten(1, (3, 2, 2)), normal(3, 12)),
    LayerSpec("conv_autoencoder", lambda r, d: with_input_grad(
        conv_autoencoder((1, 8, 7), latent=3, filters=(2, 3), rng=r, dtype=d)), normal(2, 1, 8, 7)),
    LayerSpec("conv_autoencoder_bn", lambda r, d: with_input_grad(
        conv_autoencoder((2, 6, 6), latent=4, filters=(3,), rng=r, dtype=d, batch_norm=True, output="logits")),
        normal(3, 2, 6, 6), modes=("train", "eval")),
    LayerSpec("conv_autoencoder_bilinear_up", lambda r, d: with_input_grad(
        conv_autoencoder((1, 7, 6), latent=3, filters=(2, 3), rng=r, dtype=d, upsampling="bilinear")),
        normal(2, 1, 7, 6)),
    LayerSpec("dense_autoencoder", lambda r, d: with_input_grad(
        dense_autoencoder((1, 4, 3), latent=2, hidden=(5,), rng=r, dtype=d)), normal(3, 1, 4, 3)),
]

LOSS_SPECS = [
    LossSpec("bce_probabilities", lambda d: losses.BCE(),
             lambda rng, dtype: rng.uniform(0.05, 0.95, size=(4, 1, 3, 3)).astype(dtype),
             lambda rng: rng.uniform(0, 1, size=(4, 1, 3, 3))),
]
