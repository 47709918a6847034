"""Autoencoders: dense and convolutional, any latent size, with batched ``encode`` / ``decode``.

An ``Autoencoder`` is an encoder and a decoder (two ``Sequential``s); as a ``Module`` it maps
x -> decoder(encoder(x)), so it trains with the ordinary ``Trainer`` with targets = inputs:

    ae = conv_autoencoder(latent=16, rng=0)
    Trainer(ae, MSE(), Adam(ae.parameters(), lr=2e-3), batch_size=128).fit(x, x, epochs=10)
    z = ae.encode(x_test)          # (N, 16), eval mode, in batches
    x_hat = ae.decode(z)           # (N, 1, 28, 28) in [0, 1] (Sigmoid output)

Images are NCHW in [0, 1]. ``output="sigmoid"`` ends the decoder with a Sigmoid (train with
``MSE`` or ``BCE`` on the pixels); ``output="logits"`` leaves it off (train with
``BCEWithLogits``; ``reconstruct`` then applies the sigmoid).
"""
from __future__ import annotations

import math

import numpy as np

from .. import nn
from .._checks import as_generator, check_float_array, check_int
from ..grad_mode import no_grad


class Autoencoder(nn.Module):
    """x -> decoder(encoder(x)).  x: (N, *input_shape) -> (N, *input_shape); codes (N, latent)."""

    def __init__(self, encoder: nn.Module, decoder: nn.Module, input_shape, latent: int, output: str = "sigmoid"):
        super().__init__()
        if output not in ("sigmoid", "logits"):
            raise ValueError(f"output must be 'sigmoid' or 'logits', got {output!r}")
        self.encoder, self.decoder = encoder, decoder
        self.input_shape, self.latent, self.output = tuple(input_shape), int(latent), output

    def forward(self, x):
        return self.decoder.forward(self.encoder.forward(x))

    def backward(self, dout):
        dz = self.decoder.backward(dout)
        return self.encoder.backward(dz)

    def output_shape(self, input_shape):
        return tuple(input_shape)

    def _batched(self, part, x, batch_size, name, ndim):
        check_float_array(x, name, ndim=ndim)
        batch_size = check_int(batch_size, "batch_size")
        saved = [(m, m.training) for _, m in self.named_modules()]
        self.eval()
        try:
            with no_grad():                  # forwards only (see nnlite.grad_mode)
                outs = [np.array(part.forward(x[i:i + batch_size]), copy=True)
                        for i in range(0, x.shape[0], batch_size)]
        finally:
            for m, flag in saved:
                object.__setattr__(m, "training", flag)
        return np.concatenate(outs) if outs else np.zeros((0,), dtype=x.dtype)

    def encode(self, x, batch_size: int = 512):
        """Latent codes (N, latent) of x (N, *input_shape), eval mode, ``batch_size`` at a time."""
        return self._batched(self.encoder, x, batch_size, "x", 1 + len(self.input_shape))

    def decode(self, z, batch_size: int = 512):
        """Decoder outputs (N, *input_shape) of codes z (N, latent), eval mode, in batches
        (pixels in [0, 1] for ``output="sigmoid"``, logits for ``output="logits"``)."""
        if z.ndim != 2 or z.shape[1] != self.latent:
            raise ValueError(f"z must have shape (N, {self.latent}), got {z.shape}")
        return self._batched(self.decoder, z, batch_size, "z", 2)

    def reconstruct(self, x, batch_size: int = 512):
        """Reconstructed images in [0, 1] (N, *input_shape): decode(encode(x)), sigmoid applied
        for ``output="logits"``."""
        out = self.decode(self.encode(x, batch_size), batch_size)
        if self.output == "logits":
            out = 1 / (1 + np.exp(-out))
        return out

    def extra_repr(self):
        return f"input_shape={self.input_shape}, latent={self.latent}, output={self.output!r}"


def _check_common(input_shape, latent, output):
    input_shape = tuple(int(s) for s in input_shape)
    if len(input_shape) != 3 or min(input_shape) < 1:
        raise ValueError(f"input_shape must be (C, H, W) of positive ints, got {input_shape}")
    latent = check_int(latent, "latent")
    if output not in ("sigmoid", "logits"):
        raise ValueError(f"output must be 'sigmoid' or 'logits', got {output!r}")
    return input_shape, latent


def dense_autoencoder(input_shape=(1, 28, 28), latent: int = 32, hidden=(256,), rng=None,
                      dtype=np.float32, output: str = "sigmoid") -> Autoencoder:
    """Flatten-[Linear-ReLU]*-Linear(latent) | Linear-ReLU ... -Linear(D)-[Sigmoid]-Reshape.

    hidden: widths of the encoder's hidden layers (the decoder mirrors them).
    """
    input_shape, latent = _check_common(input_shape, latent, output)
    rng = as_generator(rng)
    d = math.prod(input_shape)
    widths = [d, *(check_int(h, "hidden width") for h in hidden)]
    enc = [nn.Flatten()]
    for a, b in zip(widths[:-1], widths[1:]):
        enc += [nn.Linear(a, b, rng=rng, dtype=dtype), nn.ReLU()]
    enc.append(nn.Linear(widths[-1], latent, rng=rng, dtype=dtype, init="glorot_uniform"))
    back = [latent, *widths[:0:-1]]
    dec = []
    for a, b in zip(back[:-1], back[1:]):
        dec += [nn.Linear(a, b, rng=rng, dtype=dtype), nn.ReLU()]
    dec.append(nn.Linear(back[-1], d, rng=rng, dtype=dtype, init="glorot_uniform"))
    if output == "sigmoid":
        dec.append(nn.Sigmoid())
    dec.append(nn.Reshape(input_shape))
    encoder, decoder = nn.Sequential(*enc), nn.Sequential(*dec)
    encoder[1].needs_input_grad = False        # nothing upstream of the first Linear
    return Autoencoder(encoder, decoder, input_shape, latent, output)


def conv_autoencoder(input_shape=(1, 28, 28), latent: int = 32, filters=(32, 64), rng=None,
                     dtype=np.float32, output: str = "sigmoid", batch_norm: bool = False,
                     upsampling: str = "transposed") -> Autoencoder:
    """Strided convs down, Linear to the code, Linear back, transposed convs (or upsampling) up.

    Encoder: [Conv2d(3, stride 2, pad 1)-[BN]-ReLU] per filter count (28 -> 14 -> 7),
    Flatten, Linear(F*h*w -> latent). Decoder: Linear(latent -> F*h*w)-ReLU, Reshape,
    [ConvTranspose2d(3, stride 2, pad 1, output_padding chosen to give back each encoder size
    exactly)-[BN]-ReLU]..., the last one to C channels, then Sigmoid (``output="sigmoid"``).
    ``upsampling="nearest"`` or ``"bilinear"`` replaces each transposed conv by
    Upsample(to the encoder's size) + Conv2d(3, pad 1) (no checkerboard artefacts).
    """
    if upsampling not in ("transposed", "nearest", "bilinear"):
        raise ValueError(f"upsampling must be 'transposed', 'nearest' or 'bilinear', got {upsampling!r}")
    input_shape, latent = _check_common(input_shape, latent, output)
    rng = as_generator(rng)
    filters = [check_int(f, "filters") for f in filters]
    if not filters:
        raise ValueError("filters must name at least one conv layer")
    c, h, w = input_shape
    sizes = [(h, w)]
    enc = []
    for a, b in zip([c, *filters[:-1]], filters):
        enc.append(nn.Conv2d(a, b, 3, stride=2, padding=1, rng=rng, dtype=dtype))
        enc += [nn.BatchNorm2d(b, dtype=dtype)] if batch_norm else []
        enc.append(nn.ReLU())
        sizes.append(((sizes[-1][0] - 1) // 2 + 1, (sizes[-1][1] - 1) // 2 + 1))
    fh, fw = sizes[-1]
    flat = filters[-1] * fh * fw
    enc += [nn.Flatten(), nn.Linear(flat, latent, rng=rng, dtype=dtype, init="glorot_uniform")]
    dec = [nn.Linear(latent, flat, rng=rng, dtype=dtype), nn.ReLU(), nn.Reshape((filters[-1], fh, fw))]
    chans = [*filters[::-1], c]
    for k, (a, b) in enumerate(zip(chans[:-1], chans[1:])):
        (ih, iw), (th, tw) = sizes[-1 - k], sizes[-2 - k]
        init = "he_normal" if b != c else "glorot_uniform"
        if upsampling == "transposed":
            op = (th - (2 * ih - 1), tw - (2 * iw - 1))          # (in-1)*2 - 2 + 3 + op = target
            dec.append(nn.ConvTranspose2d(a, b, 3, stride=2, padding=1, output_padding=op, rng=rng, dtype=dtype,
                                          init=init))
        else:
            dec += [nn.Upsample(mode=upsampling, size=(th, tw)),
                    nn.Conv2d(a, b, 3, padding=1, rng=rng, dtype=dtype, init=init)]
        if b != c:
            dec += ([nn.BatchNorm2d(b, dtype=dtype)] if batch_norm else []) + [nn.ReLU()]
    if output == "sigmoid":
        dec.append(nn.Sigmoid())
    encoder, decoder = nn.Sequential(*enc), nn.Sequential(*dec)
    encoder[0].needs_input_grad = False        # the images need no gradient
    return Autoencoder(encoder, decoder, input_shape, latent, output)
