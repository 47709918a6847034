"""Encoders and heads for self-supervised learning.

* :func:`resnet` -- the ResNet-18/34 layout (basic blocks from ``nnlite.nn.basic_block``),
  width and depth configurable, a CIFAR stem (3x3 conv, stride 1, no max-pool) for 32x32 and
  64x64 inputs, global average pooling: x (N, C, H, W) -> h (N, widths[-1]).
* :func:`small_cnn` -- three conv-BN-ReLU stages and global average pooling (fast on CPU).
* :func:`mlp_head` -- Linear-BN-ReLU-Linear projection / prediction head: (N, D_in) -> (N, D_out).
The embedding used for evaluation is the encoder's output h (before the projection head), the
SimCLR/BYOL convention; pass ``head`` layers to :func:`embed` to take it after them instead.
"""
from __future__ import annotations

import numpy as np

from .. import nn
from .._checks import as_generator, check_float_array, check_int
from .._io import atomic_open

RESNET_DEPTHS = {18: (2, 2, 2, 2), 34: (3, 4, 6, 3)}


def resnet(depth=18, widths=(64, 128, 256, 512), in_channels=3, rng=None, dtype=np.float32,
           mean=None, std=None):
    """ResNet encoder with the CIFAR stem: [Normalize] conv3x3(C->w0)-BN-ReLU, stages of basic
    blocks (first block of stage s > 0 has stride 2), global average pooling.

    depth: 18 -> blocks (2, 2, 2, 2), 34 -> (3, 4, 6, 3), or a tuple of blocks per stage
    (same length as ``widths``). x: (N, in_channels, H, W) in [0, 1] -> (N, widths[-1]).
    mean/std (per channel): an ``nn.Normalize`` first layer (models take [0, 1] images).
    """
    blocks = RESNET_DEPTHS.get(depth, depth) if isinstance(depth, int) else tuple(depth)
    if isinstance(blocks, int) or len(blocks) != len(widths):
        raise ValueError(f"depth must be 18, 34 or a tuple of blocks per stage of length "
                         f"len(widths)={len(widths)}, got {depth!r}")
    blocks = [check_int(b, "depth[i]") for b in blocks]
    widths = [check_int(w, "widths[i]") for w in widths]
    rng = as_generator(rng)
    layers = []
    if mean is not None:
        layers.append(nn.Normalize(mean, std, dtype=dtype))
    layers += [nn.Conv2d(in_channels, widths[0], 3, padding=1, bias=False, rng=rng, dtype=dtype),
               nn.BatchNorm2d(widths[0], dtype=dtype), nn.ReLU()]
    c = widths[0]
    for s, (nb, w) in enumerate(zip(blocks, widths)):
        for b in range(nb):
            layers.append(nn.basic_block(c, w, stride=2 if (s > 0 and b == 0) else 1, rng=rng, dtype=dtype))
            c = w
    layers.append(nn.GlobalAvgPool2d())
    model = nn.Sequential(*layers)
    model.out_features = c
    return model


def small_cnn(widths=(32, 64, 128), in_channels=3, rng=None, dtype=np.float32, mean=None, std=None):
    """[Normalize] then per stage conv3x3-BN-ReLU-MaxPool2 (the last stage without pooling),
    then global average pooling: (N, in_channels, H, W) -> (N, widths[-1])."""
    rng = as_generator(rng)
    layers = [nn.Normalize(mean, std, dtype=dtype)] if mean is not None else []
    c = in_channels
    for s, w in enumerate(widths):
        w = check_int(w, "widths[i]")
        layers += [nn.Conv2d(c, w, 3, padding=1, bias=False, rng=rng, dtype=dtype),
                   nn.BatchNorm2d(w, dtype=dtype), nn.ReLU()]
        if s < len(widths) - 1:
            layers.append(nn.MaxPool2d(2))
        c = w
    layers.append(nn.GlobalAvgPool2d())
    model = nn.Sequential(*layers)
    model.out_features = c
    return model


def mlp_head(in_features, hidden, out_features, rng=None, dtype=np.float32):
    """Projection / prediction head Linear-BN-ReLU-Linear: (N, in_features) -> (N, out_features)."""
    rng = as_generator(rng)
    return nn.Sequential(nn.Linear(check_int(in_features, "in_features"), check_int(hidden, "hidden"), bias=False,
                                   rng=rng, dtype=dtype),
                         nn.BatchNorm1d(hidden, dtype=dtype), nn.ReLU(),
                         nn.Linear(hidden, check_int(out_features, "out_features"), rng=rng, dtype=dtype))


def embed(encoder, x, batch_size=256, head=None, dtype=np.float32):
    """Deterministic test-time embeddings: no augmentation, eval mode (batch norm on running
    statistics), in batches. x: (N, C, H, W) float in [0, 1] or uint8 (divided by 255) -> (N, D).
    The model's mode is restored."""
    check_int(batch_size, "batch_size")
    modules = [encoder] + ([head] if head is not None else [])
    was = [m.training for m in modules]
    for m in modules:
        m.eval()
    try:
        outs = []
        for i in range(0, len(x), batch_size):
            xb = np.asarray(x[i:i + batch_size])
            xb = xb.astype(dtype) / 255 if xb.dtype == np.uint8 else xb.astype(dtype, copy=False)
            h = encoder.forward(xb)
            if head is not None:
                h = head.forward(h)
            outs.append(h)
        return np.concatenate(outs) if outs else np.zeros((0, 0), dtype=dtype)
    finally:
        for m, w in zip(modules, was):
            m.train(w)


def save_embeddings(path, embeddings, labels=None, **extra):
    """Save embeddings (N, D) (and labels (N,), and any ``extra`` plain arrays) as an npz.

    Written through :func:`nnlite._io.atomic_open`: the file appears whole or not at all, and a
    failed write leaves an earlier file of the same name as it was. Object arrays are refused
    (they would need pickle to load). Read back with ``np.load(path)`` (``allow_pickle=False``).
    """
    embeddings = check_float_array(np.asarray(embeddings), "embeddings", ndim=2)
    arrays = {"embeddings": embeddings}
    if labels is not None:
        labels = np.asarray(labels)
        if labels.shape != (len(embeddings),):
            raise ValueError(f"labels must have shape ({len(embeddings)},) like the embeddings' rows, "
                             f"got {labels.shape}")
        arrays["labels"] = labels
    for key, value in extra.items():
        if key in arrays:
            raise ValueError(f"extra array name {key!r} is taken by the embeddings or labels")
        arrays[key] = np.asarray(value)
    for key, value in arrays.items():
        if value.dtype.hasobject:
            raise TypeError(f"{key} must be a plain numeric array, got dtype {value.dtype}")
    with atomic_open(path) as f:
        np.savez(f, **arrays)


def recalibrate_batchnorm(encoder, x, batch_size=256, batches=20, rng=0, dtype=np.float32):
    """Refresh the batch-norm running statistics of ``encoder`` from un-augmented images, with
    no gradient step: ``batches`` forward passes in training mode (random batches of x). Used to
    make a random-init encoder's eval-mode features a fair baseline (its running statistics are
    otherwise the initial 0 / 1). x: (N, C, H, W) float or uint8 NHWC-free NCHW."""
    rng = as_generator(rng)
    was = encoder.training
    encoder.train()
    try:
        for _ in range(check_int(batches, "batches")):
            idx = rng.choice(len(x), size=min(batch_size, len(x)), replace=False)
            xb = np.asarray(x[idx])
            xb = xb.astype(dtype) / 255 if xb.dtype == np.uint8 else xb.astype(dtype, copy=False)
            encoder.forward(xb)
    finally:
        encoder.train(was)
    return encoder
