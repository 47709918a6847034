"""Engine 2-D convolution (same contract as ``nnlite.functional.conv``): im2col + GEMM, batch-chunked.

Public tensors are NCHW (shapes and indexing). Internally the kernels work channel-LAST:

* **forward.** The batch is cut into chunks of ``m`` images (``_chunk_plan``: a chunk's patch
  matrix holds about ``CHUNK_BYTES``, so it is built and multiplied while it is still in the
  core's cache). Per chunk: the images are copied (zero padded, channel-last) into a reused
  padded buffer, their patch matrix ``cols`` (m*Ho*Wo, kh*kw*C_in), columns ordered (i, j, c),
  is copied from a strided window view of that buffer into a reused patch buffer, and ONE GEMM
  ``cols @ W_k`` with W_k (kh*kw*C_in, C_out) writes its result straight into the chunk's rows
  of the output (N*Ho*Wo, C_out), which IS the output in NHWC memory order. The bias rides in
  that GEMM (``BIAS_IN_GEMM``: the patch workspace has a last column of ones and W_k a last
  row b; else it is added to the rows while they are in cache). The output is returned as an (N, C_out, Ho, Wo)
  array: a transposed, non-copied view of that memory ("channel-last"). NumPy handles any
  strides, and the next conv, pool or ReLU reads that memory contiguously.
* **backward**, per chunk of the same plan: the patches are rebuilt from the cached input
  (cheaper than caching them: the patch matrix is kh*kw times bigger than the input);
  dW^T += cols^T @ dout_chunk (kh*kw*C_in, C_out), whose extra row (the column of ones) is
  db (without ``BIAS_IN_GEMM``: db += ones @ dout_chunk, a GEMV). dx, stride 1 and narrow
  layers (``DX_AS_CONV``): the convolution of dout, zero padded by (kh-1-ph, kw-1-pw), with the
  flipped kernel: dout's patch matrix (``_dout_patches``) times W flipped, ONE GEMM writing
  the chunk's rows of dx. Otherwise: one small GEMM per kernel offset,
  ``dout_chunk @ W[:, :, i, j]`` (m*Ho*Wo, C_in), added into the matching strided slice of the
  chunk's rows of dx (kh*kw Python iterations per chunk, never a loop over pixels); those
  slices are long contiguous runs in NHWC, and the chunk of dx stays in cache meanwhile.
* A 1x1 stride-1 unpadded conv of a channel-last input needs no patches: its patch matrix is
  the input itself, and each product is one GEMM over the whole batch.

**Workers.** The chunks of both passes go through ``nnlite.parallel.run_chunks``: inside a
``parallel.threads()`` block (``Trainer.fit`` opens one) worker t of T takes chunks t, t+T, ...
on its own core with single-threaded BLAS (each chunk's copies and GEMMs stay in that core's
cache), writes its disjoint rows of ``out``/``dx`` and returns its partial dW^T, summed in worker
order (deterministic). Outside a block: one worker, BLAS's own threads.

**Workspaces** (``_workspace``): the padded-image, patch and per-offset product buffers are
reused between calls: one flat buffer per (role, dtype) and thread, shared by every layer
(views of its first elements; ``init``, e.g. a zero border, reruns when the shape changes), so
they take the largest layer's size, not the sum over the layers (large fresh arrays cost page
faults comparable to the copy itself). They only ever hold values inside one call:
results (``out``, ``dx``, ``dw``, ``db``) are always fresh arrays and the cache holds only the
caller's input, so workspace reuse never aliases results across calls or layers. They are
chunk-sized (bounded by ``WORKSPACE_MAX_BYTES`` in total, or one image's patches if bigger);
``release_workspaces()`` frees the calling thread's. One set per thread (each worker has its
own).

Every matrix product of the kernels goes through ``_gemm`` (and only those), every patch
build through ``_patches`` (``_dout_patches`` for dx), every dx addition through
``_scatter_add``, every parallel region through ``run_chunks``: these are the declared seams
of ``nnlite.fast.probes``, through which the benchmark records the GEMM calls and profiles
where the time goes.

**Fused ReLU** (``relu=True``, what ``nn.Sequential`` runs for a ``Conv2d`` followed by a
``ReLU`` on this storey): out = max(conv(x), 0), applied to each chunk's output rows right after
its GEMM, while they are in cache, instead of a separate pass over the whole output (and a
fresh array) by the ReLU layer; backward masks each chunk's rows of dout with out > 0 as it
copies them into the dout workspace (``_dout_rows``), instead of the ReLU layer's own pass.
The same values as conv then ReLU, in the same order: bit-identical results. Measured on the
Fashion-MNIST CNN's training step (two workers): see ``benchmarks/RESULTS.md``.

**Pending dout**: ``conv2d_backward`` also takes a ``PendingGrad`` (``nnlite.fast.pending``:
the gradient of the batch norm or max pool after this conv, not yet written): ``_dout_rows``
then computes each chunk's rows of it into the dout workspace (and masks them with the fused
ReLU's derivative, if any). The max pool's (``pool.MaxPoolPendingGrad``) measured as fast as
the written one (``python -m benchmarks.fusion_ab --switch FUSE_POOL_INTO_CONV``, 25 rounds:
1.01x on the Fashion-MNIST CNN, 0.99x on the CIFAR CNN) and takes the conv's dout, an
activation-sized array, off the backward's peak memory. The batch norm's, measured,
two workers, batch 256, conv + batch norm backward, min over 25 interleaved rounds:
32->32 at 32x32 94.0 against 96.4 ms, 64->64 at 16x16 70.1 / 74.0 ms, 128->128 at 8x8 (+ReLU)
53.5 / 58.4 ms; the ResNet encoder's training step on a calm machine
(``python -m benchmarks.fusion_ab --switch FUSE_BN_INTO_CONV``, 20 rounds): 1.02x (min 717.2
against 734.6 ms, median 779.1 / 793.8 ms).

Cache (``ConvCache``): ``(x, w, has_bias, stride, pad, y)``: the input itself (no copy; usually alive
anyway as the previous layer's output); ``y`` is the output (NHWC memory) with the fused ReLU,
else None. Backward rebuilds every chunk's patches, first layers' too (keeping their whole-batch
patches measured no faster, and cost 14 MiB at a CIFAR training step's peak).
The textbook version of this kernel (im2col + one GEMM + col2im,
channel-first, one screen) is ``nnlite.functional.conv``; tests prove the two equal.

Output size: Ho = (H + 2*ph - kh) // sh + 1, Wo likewise.
"""
from __future__ import annotations

import math
import threading
from typing import NamedTuple

import numpy as np
from numpy.lib.stride_tricks import as_strided

from .._checks import pair
from ..functional.conv import conv_output_size
from ..parallel import num_threads
from ..parallel import run_chunks as _run_chunks
from . import probes
from .activations import relu_masked
from .pending import PendingGrad
from .pool import _offset_slices as offset_slices
from .pool import _params as pool_params
from .pool import maxpool2d_forward

#: Target size of one chunk's patch matrix (at least one image per chunk): small enough to stay
#: in the core's L2 cache (2 MiB here) together with the chunk's output rows.
CHUNK_BYTES = 1 << 20

#: ... but at least this many output rows per chunk (when the batch has them): GEMMs with
#: fewer rows run below BLAS speed (a 5x5 32->64 14x14 layer has ~200 rows per image), and
#: every chunk costs ~11 GEMM calls (2048 measured slightly faster than 1024 on 32x32 images
#: with two workers, and never slower on the benchmark's other shapes).
CHUNK_MIN_ROWS = 2048

#: Patch building: one copy per kernel offset (instead of one copy of the 6-D window view)
#: when kw*C_in is at most this: the window view's contiguous runs are only kw*C_in long.
PATCH_PER_OFFSET_MAX_RUN = 6

#: First layers (patch length kh*kw*C_in at most this, e.g. 1 or 3 input channels): the patch
#: matrix is built TRANSPOSED, (kh*kw*C_in, rows), from a channel-first padded copy of the
#: images: one copy per kernel offset whose contiguous runs are image rows (Wo values), instead
#: of runs of kw*C_in values; the GEMMs take it transposed (no copy) and dx's per-offset
#: products come out as rows too (see ``_patches`` and ``_input_grad_chunk``).
TRANSPOSED_PATCHES_MAX_K = 32

#: dx of stride-1 layers with at most ``DX_AS_CONV_MAX_CHANNELS`` input and output channels
#: (other than first layers) as what it is, the convolution of the output gradient, zero padded
#: by kh-1-ph / kw-1-pw, with the flipped kernel: the patches of dout and ONE GEMM that writes
#: dx's rows directly, instead of kh*kw GEMMs of width C_in over C_out whose products are added
#: into strided slices of a zeroed dx. With two workers (``python -m benchmarks --only conv``)
#: the backward of 32->32 at 32x32 got 13% faster, 32->64 layers were within +-6%, and 64->64,
#: 5x5 32->64 and unpadded 32->64 got 12-27% slower (dout's patches, kh*kw*C_out values per
#: pixel, cost more than the narrow GEMMs save): hence the channel limit. Re-measured on this
#: machine (Intel, two workers, min of 15, ms, per-offset -> as a convolution): 64->64 at 16x16
#: 28.1-29.5 -> 26.6-27.2 (batch 128), 56.8-58.4 -> 52.0-54.2 (batch 256); 128->128 at 8x8
#: 44.8-46.5 -> 43.7-46.7; but 32->64 13.3 -> 13.5 (14x14), 16.8 -> 17.3 (16x16) and 64->128
#: 94.5 -> 100.3: so also layers up to ``DX_AS_CONV_MAX_CHANNELS`` channels whose output is no
#: wider than their input (dout's patches then no wider than the input's).
DX_AS_CONV = True
DX_AS_CONV_MAX_CHANNELS = 64
DX_AS_CONV_NARROW = 32

#: The bias rides in the GEMMs: the patch workspace has an extra column of ones, W_k an extra
#: row b, so the forward GEMM adds the bias and the dW GEMM's extra row is db.
BIAS_IN_GEMM = True

#: The workspaces are dropped (and re-created on demand) when they exceed this in total.
WORKSPACE_MAX_BYTES = 64 << 20


_ws = threading.local()


def _workspace(role, shape, dtype, init=None):
    """A reused array of ``shape``/``dtype`` for ``role``, the first elements of one flat
    buffer per (role, dtype) that every layer shares (so a model's workspaces take the largest
    layer's size, not the sum over its layers). Contents are kept between calls of the same
    shape; ``init(a)`` runs whenever the role's shape changes (and on creation), e.g. to zero
    a border or set a column of ones that callers then never overwrite. Only ever used within
    one kernel call: never returned, never cached. The common call (the role's shape as last
    time) is one dictionary lookup: a chunked layer calls this a few times per chunk."""
    views = getattr(_ws, "views", None)
    if views is None:
        release_workspaces()
        views = _ws.views
    key = (role, dtype if isinstance(dtype, np.dtype) else np.dtype(dtype))
    last = views.get(key)
    if last is not None and last[0] == shape:
        return last[1]
    shape = tuple(shape)
    size = math.prod(shape)
    arrays = _ws.arrays
    flat = arrays.get(key)
    if flat is None or flat.size < size:
        others = sum(v.nbytes for k, v in arrays.items() if k != key)
        if others + size * key[1].itemsize > WORKSPACE_MAX_BYTES:
            arrays.clear()
            views.clear()
        flat = arrays[key] = np.empty(size, key[1])
    a = flat[:size].reshape(shape)
    views[key] = (shape, a)
    if init is not None:
        init(a)
    return a


def release_workspaces():
    """Free this thread's workspace buffers (they are re-created by the next convolution)."""
    _ws.arrays, _ws.views = {}, {}


class Geometry(NamedTuple):
    """Shapes of one convolution: input (n, c_in, h, w), weight (c_out, c_in, kh, kw),
    stride (sh, sw), padding (ph, pw), output (ho, wo)."""
    n: int
    c_in: int
    h: int
    w: int
    c_out: int
    kh: int
    kw: int
    sh: int
    sw: int
    ph: int
    pw: int
    ho: int
    wo: int

    @property
    def k(self):
        """Patch length kh*kw*C_in (columns of the patch matrix, rows of W_k)."""
        return self.kh * self.kw * self.c_in

    def is_pointwise(self):
        """1x1, stride 1, no padding: the patch matrix is the input itself."""
        return self.kh == self.kw == self.sh == self.sw == 1 and self.ph == self.pw == 0


def _geometry(x_shape, w_shape, stride, pad) -> Geometry:
    n, c, h, wd = x_shape
    c_out, c_in, kh, kw = w_shape
    if c_in != c:
        raise ValueError(f"input has {c} channels, weight expects {c_in}")
    (sh, sw), (ph, pw) = pair(stride, "stride"), pair(pad, "pad")
    return Geometry(n, c, h, wd, c_out, kh, kw, sh, sw, ph, pw,
                    conv_output_size(h, kh, sh, ph), conv_output_size(wd, kw, sw, pw))


def _chunk_plan(g: Geometry, itemsize):
    """(m, [(n0, n1), ...]): chunks of at most m images whose patch matrices hold about
    ``CHUNK_BYTES``, or ``CHUNK_MIN_ROWS`` output rows if that is more (at least one image),
    but at least one chunk per worker of an enclosing ``parallel.threads()`` block when the
    batch has that many images (a small batch is not left to one core)."""
    image_bytes = g.ho * g.wo * g.k * itemsize
    m = max(CHUNK_BYTES // max(image_bytes, 1), -(-CHUNK_MIN_ROWS // (g.ho * g.wo)))
    m = min(m, -(-g.n // num_threads()))
    m = int(max(1, min(g.n, m)))
    return m, [(n0, min(n0 + m, g.n)) for n0 in range(0, g.n, m)]


run_chunks = probes.seam("region")(_run_chunks)


# ----------------------------------------------------------------------------- seams and helpers

@probes.seam("gemm")
def _gemm(a, b, out):
    """out = a @ b, one BLAS GEMM (a: (M, K), b: (K, N), out: (M, N), any of them a strided
    view BLAS can take). The only matrix products of the conv kernels (see module docstring)."""
    return np.matmul(a, b, out=out)


def _zero(a):
    a[...] = 0


def _ones(a):
    a[...] = 1


def _last_column_ones(a):
    a[:, -1] = 1


def _last_row_ones(a):
    a[-1] = 1


@probes.seam("patches")
def _patches(x, n0, n1, g: Geometry, m, ones=False):
    """Patch matrix of images n0..n1-1 of ``x`` (N, C, H, W, any memory layout):
    (k*Ho*Wo, kh*kw*C) with k = n1 - n0, rows (image, y, x), columns (i, j, c), and with
    ``ones`` a last column of ones (k*Ho*Wo, kh*kw*C + 1). Lives in a workspace (valid until
    the next ``_patches`` call); ``m`` is the plan's chunk size.

    The images are copied zero padded and channel-last into a workspace whose border is
    zero since its creation (only its interior is ever written), then one copy of a strided
    window view of it fills the patch workspace (or one copy per kernel offset when the
    window view's contiguous runs, kw*C, are short). First layers (``_transposed_patches``)
    get the transposed matrix instead, (kh*kw*C [+ 1], k*Ho*Wo): ``_patches_transposed``."""
    k = n1 - n0
    if _transposed_patches(g):
        return _patches_transposed(x, n0, n1, g, m, ones)
    xh = x.transpose(0, 2, 3, 1)[n0:n1]                                      # (k, H, W, C)
    if g.ph or g.pw:
        xp = _workspace(("padded", g.ph, g.pw), (m, g.h + 2 * g.ph, g.w + 2 * g.pw, g.c_in),
                        x.dtype, init=_zero)[:k]
        xp[:, g.ph:g.ph + g.h, g.pw:g.pw + g.w] = xh
    else:
        xp = xh
    rows = k * g.ho * g.wo
    mat = _workspace("patches+1" if ones else "patches", (m * g.ho * g.wo, g.k + ones), x.dtype,
                     init=_last_column_ones if ones else None)[:rows]
    cols = mat[:, :g.k].reshape((k, g.ho, g.wo, g.kh, g.kw, g.c_in), copy=False)
    if g.kw * g.c_in <= PATCH_PER_OFFSET_MAX_RUN:
        ys, xs = g.sh * (g.ho - 1) + 1, g.sw * (g.wo - 1) + 1
        for i in range(g.kh):
            for j in range(g.kw):
                cols[:, :, :, i, j] = xp[:, i:i + ys:g.sh, j:j + xs:g.sw]
    else:
        s_n, s_h, s_w, s_c = xp.strides
        win = as_strided(xp, shape=cols.shape, writeable=False,
                         strides=(s_n, s_h * g.sh, s_w * g.sw, s_h, s_w, s_c))
        np.copyto(cols, win)
    return mat


def _transposed_patches(g: Geometry) -> bool:
    """First-layer geometry: the patch matrix is built transposed (``TRANSPOSED_PATCHES_MAX_K``).
    Not 1x1 kernels: a strided 1x1 conv (a ResNet projection shortcut) is an inner layer whose
    patches are a subsampled copy of its input, and its dx must stay channel-last (a
    channel-first dx added to the block's channel-last one makes every later element-wise
    pass of the backward a strided one)."""
    return g.k <= TRANSPOSED_PATCHES_MAX_K and g.kh * g.kw > 1


def _patches_transposed(x, n0, n1, g: Geometry, m, ones=False):
    """Transposed patch matrix of images n0..n1-1: (kh*kw*C [+ 1 row of ones], k*Ho*Wo), rows
    (i, j, c) as the columns of ``_patches``, columns (image, y, x). The images are copied zero
    padded and channel-FIRST into a workspace (border zero since creation); then one copy of
    the (kh, kw, C, k, Ho, Wo) strided window view of it: contiguous runs of Wo values
    (instead of kw*C for the channel-last matrix)."""
    k, rows = n1 - n0, (n1 - n0) * g.ho * g.wo
    xp = _workspace(("padded-cf", g.ph, g.pw), (g.c_in, m, g.h + 2 * g.ph, g.w + 2 * g.pw),
                    x.dtype, init=_zero)[:, :k]
    xp[:, :, g.ph:g.ph + g.h, g.pw:g.pw + g.w] = x[n0:n1].transpose(1, 0, 2, 3)
    mat = _workspace("patchesT+1" if ones else "patchesT", (g.k + ones, m * g.ho * g.wo),
                     x.dtype, init=_last_row_ones if ones else None)
    t = mat[:g.k, :rows].reshape(g.kh, g.kw, g.c_in, k, g.ho, g.wo)
    s_c, s_n, s_h, s_w = xp.strides
    np.copyto(t, as_strided(xp, shape=t.shape, writeable=False,
                            strides=(s_h, s_w, s_c, s_n, s_h * g.sh, s_w * g.sw)))
    return mat[:, :rows]


@probes.seam("dout_patches")
def _dout_patches(drows, k, g: Geometry, m):
    """Patch matrix of the output gradient for ``_dx_as_conv``: drows (k*Ho*Wo, C_out) of k
    images, zero padded by (kh-1-ph, kw-1-pw) into a workspace (border zero since creation),
    then one copy of its strided window view -> (k*H*W, kh*kw*C_out), rows (image, y, x),
    columns (i, j, o). Lives in a workspace (valid until the next call)."""
    qh, qw = g.kh - 1 - g.ph, g.kw - 1 - g.pw
    d4 = drows.reshape(k, g.ho, g.wo, g.c_out)
    if qh or qw:
        dp = _workspace(("dout-padded", qh, qw), (m, g.ho + 2 * qh, g.wo + 2 * qw, g.c_out),
                        drows.dtype, init=_zero)[:k]
        dp[:, qh:qh + g.ho, qw:qw + g.wo] = d4
    else:
        dp = d4
    mat = _workspace("dout-patches", (m * g.h * g.w, g.kh * g.kw * g.c_out), drows.dtype)
    mat = mat[:k * g.h * g.w]
    cols = mat.reshape(k, g.h, g.w, g.kh, g.kw, g.c_out)
    s_n, s_h, s_w, s_c = dp.strides
    np.copyto(cols, as_strided(dp, shape=cols.shape, writeable=False,
                               strides=(s_n, s_h, s_w, s_h, s_w, s_c)))
    return mat


def _offset_range(i, pad, stride, size, out_size):
    """Output positions y whose input row y*stride + i - pad lies in [0, size), as
    (y0, y1, first input row); y1 <= y0 when none does."""
    y0 = max(0, -((i - pad) // stride))                     # ceil((pad - i) / stride)
    y1 = min(out_size, (size - 1 + pad - i) // stride + 1)
    return y0, y1, y0 * stride + i - pad


@probes.seam("scatter_add")
def _scatter_add(dx, t4, row_range, col_range, sh, sw):
    """dx[:, r0::sh, c0::sw] += t4[:, y0:y1, x0:x1] for one kernel offset.

    dx: (k, H, W, C_in) chunk of the input gradient; t4: (k, Ho, Wo, C_in) that offset's
    product; the ranges from ``_offset_range``."""
    (y0, y1, r0), (x0, x1, c0) = row_range, col_range
    dst = dx[:, r0:r0 + sh * (y1 - y0 - 1) + 1:sh, c0:c0 + sw * (x1 - x0 - 1) + 1:sw]
    dst += t4[:, y0:y1, x0:x1]


# ----------------------------------------------------------------------------- kernels

class ConvCache(NamedTuple):
    """What ``conv2d_forward`` keeps for ``conv2d_backward`` (see the module docstring)."""
    x: np.ndarray
    w: np.ndarray
    has_bias: bool
    stride: tuple
    pad: tuple
    y: np.ndarray | None = None


def conv2d_forward(x, w, b=None, stride=1, pad=0, relu=False, maxpool=None):
    """out[n, o] = sum_{c,i,j} w[o, c, i, j] * xpad[n, c, y*s + i, x*s + j] + b[o].

    x: (N, C_in, H, W); w: (C_out, C_in, kh, kw); b: (C_out,) or None;
    stride, pad: int or (h, w) pair (zero padding)  ->  out: (N, C_out, Ho, Wo), cache.
    ``out`` is a fresh array stored channel-last (see the module docstring); index it as NCHW.
    relu: out = max(out, 0), fused (see the module docstring); backward then includes the
    ReLU's derivative (dout * (out > 0)).
    maxpool: (kernel, stride) of a max pool applied to out, fused, for forwards no backward
    follows (``nnlite.no_grad()``): returns (pooled (N, C_out, Hp, Wp), channel-last, None);
    each chunk's output rows are pooled while in cache and the whole output is never written
    (bit-identical to ``maxpool2d_forward`` of the unfused output).
    """
    g = _geometry(x.shape, w.shape, stride, pad)
    if maxpool is not None and g.is_pointwise():
        out, _ = conv2d_forward(x, w, b, stride, pad, relu)          # one whole-batch GEMM
        return maxpool2d_forward(out, *maxpool)[0], None
    w_k = w.transpose(2, 3, 1, 0).reshape(g.k, g.c_out)                 # rows (i, j, c)
    out = None if maxpool is not None else np.empty((g.n, g.ho, g.wo, g.c_out), dtype=x.dtype)   # NHWC
    xh = x.transpose(0, 2, 3, 1)
    if g.is_pointwise() and xh.flags.c_contiguous:
        _gemm(xh.reshape(-1, g.c_in), w_k, out.reshape(-1, g.c_out))
        if b is not None:
            out += b
        if relu:
            np.maximum(out, 0, out=out)
    else:
        m, chunks = _chunk_plan(g, x.itemsize)
        ones = b is not None and BIAS_IN_GEMM
        transposed = _transposed_patches(g)
        if ones:
            w_k = np.concatenate([w_k, b[None, :]])                       # (k + 1, C_out)

        if maxpool is not None:
            pooled, rows0, offs = _pooled_output(g, maxpool, x.dtype)

        def forward_chunks(worker, my_chunks):
            for n0, n1 in my_chunks:
                if maxpool is None:
                    rows = out[n0:n1].reshape(-1, g.c_out)
                else:
                    rows = _workspace("conv out", (m * g.ho * g.wo, g.c_out), x.dtype)[:(n1 - n0) * g.ho * g.wo]
                cols = _patches(x, n0, n1, g, m, ones)
                _gemm(cols.T if transposed else cols, w_k, rows)
                if b is not None and not ones:
                    rows += b                              # while the rows are in cache
                if relu:
                    np.maximum(rows, 0, out=rows)          # the fused ReLU, likewise
                if maxpool is not None:                    # and the fused max pool
                    _max_pool_rows(rows.reshape(n1 - n0, g.ho, g.wo, g.c_out), pooled[n0:n1], rows0, offs)
        run_chunks(forward_chunks, chunks)
        if maxpool is not None:
            return pooled.transpose(0, 3, 1, 2), None
    cache = ConvCache(x, w, b is not None, (g.sh, g.sw), (g.ph, g.pw), out if relu else None)
    return out.transpose(0, 3, 1, 2), cache


def _pooled_output(g: Geometry, maxpool, dtype):
    """The fused max pool's result (N, Hp, Wp, C_out) (channel-last, like the pool's on a conv
    output), the (H, W) slices of offset (0, 0) and every offset's ``(k, slices)``."""
    ph, pw, sh, sw = pool_params(*maxpool)
    hp, wp = conv_output_size(g.ho, ph, sh, 0), conv_output_size(g.wo, pw, sw, 0)
    offs = offset_slices(ph, pw, sh, sw, hp, wp)
    return np.empty((g.n, hp, wp, g.c_out), dtype=dtype), offs[0][1], offs


def _max_pool_rows(y, pooled, rows0, offs):
    """pooled = max over the window offsets of y (k, Ho, Wo, C) (a chunk's output rows), in
    the order of ``maxpool2d_forward`` (offset (0, 0), then the others row-major)."""
    pooled[...] = y[:, rows0[0], rows0[1]]
    for _, (rows, cols) in offs[1:]:
        np.maximum(pooled, y[:, rows, cols], out=pooled)


def conv2d_backward(dout, cache, need_input_grad: bool = True, need_weight_grad: bool = True):
    """Gradients of conv2d_forward.

    dout: (N, C_out, Ho, Wo) -> dx: (N, C_in, H, W), dw: (C_out, C_in, kh, kw), db: (C_out,).
    Per chunk of images: dW^T += cols^T @ dout_rows; db += ones @ dout_rows;
    dx[.., y*s+i-p, x*s+j-p] += dout_rows @ W[:, :, i, j] per kernel offset.
    Pass ``need_input_grad=False`` (first layer) or ``need_weight_grad=False`` (frozen layer)
    to skip that part; the skipped result is returned as None. ``dx`` is a fresh array stored
    channel-last, like the forward output.
    """
    x, w, has_bias, stride, pad, y = cache
    g = _geometry(x.shape, w.shape, stride, pad)
    xh = x.transpose(0, 2, 3, 1)
    if isinstance(dout, PendingGrad):
        if dout.shape != (g.n, g.c_out, g.ho, g.wo):
            raise ValueError(f"dout has shape {dout.shape}, the forward output had "
                             f"{(g.n, g.c_out, g.ho, g.wo)}")
        if g.is_pointwise() and xh.flags.c_contiguous:
            dout = dout.materialize()            # whole-batch GEMMs
    dt = dout.dtype
    pending = isinstance(dout, PendingGrad)
    dh = dout if pending else dout.transpose(0, 2, 3, 1)                # (N, Ho, Wo, C_out)
    pointwise = not pending and g.is_pointwise() and xh.flags.c_contiguous and dh.flags.c_contiguous
    transposed = not pointwise and _transposed_patches(g)      # first layers: dx channel-first
    dx_shape = (g.n, g.c_in, g.h, g.w) if transposed else (g.n, g.h, g.w, g.c_in)
    dx = np.empty(dx_shape, dtype=dt) if need_input_grad else None
    dw_t = None                                  # dW^T (kh*kw*C_in, C_out)
    db = np.zeros(g.c_out, dtype=dt) if need_weight_grad and has_bias else None
    if pointwise:
        dmat = dh.reshape(-1, g.c_out)
        if y is not None:                            # the fused ReLU's derivative
            dmat = relu_masked(dmat, y.reshape(-1, g.c_out), np.empty(dmat.shape, dt))
        if need_weight_grad:
            dw_t = np.empty((g.k, g.c_out), dtype=dt)
            _gemm(xh.reshape(-1, g.c_in).T, dmat, dw_t)
            if db is not None:
                np.matmul(np.ones(dmat.shape[0], dt), dmat, out=db)             # GEMV
        if need_input_grad:
            _gemm(dmat, w[:, :, 0, 0], dx.reshape(-1, g.c_in))
    else:
        m, chunks = _chunk_plan(g, dt.itemsize)
        w_t = _input_grad_weights(w, g)
        ones = db is not None and BIAS_IN_GEMM
        dw_rows = g.k + 1 if ones else g.k           # the dW GEMM's extra last row is db

        def backward_chunks(worker, my_chunks):
            # this worker's partial sums of dW^T (and db), over its own chunks, in order
            part_dw = np.empty((dw_rows, g.c_out), dtype=dt) if need_weight_grad else None
            part_db = np.zeros(g.c_out, dtype=dt) if db is not None and not ones else None
            for c, (n0, n1) in enumerate(my_chunks):
                drows = _dout_rows(dh, n0, n1, g, m, y)
                if need_weight_grad:
                    _weight_grad_chunk(x, drows, n0, n1, g, m, part_dw, part_db, first=c == 0)
                if need_input_grad:
                    _input_grad_chunk(drows, w_t, dx[n0:n1], g, m)
            return part_dw, part_db
        parts = run_chunks(backward_chunks, chunks)
        if need_weight_grad:                         # combined in worker order: deterministic
            dw_t = parts[0][0]
            for part_dw, part_db in parts[1:]:
                dw_t += part_dw
            if db is not None and not ones:
                for _, part_db in parts:
                    db += part_db
        if ones:
            db[...] = dw_t[g.k]
            dw_t = dw_t[:g.k]
    dw = None
    if need_weight_grad:
        dw = np.ascontiguousarray(dw_t.reshape(g.kh, g.kw, g.c_in, g.c_out).transpose(3, 2, 0, 1))
    if dx is not None and not transposed:
        dx = dx.transpose(0, 3, 1, 2)
    return dx, dw, db


def _dout_rows(dh, n0, n1, g: Geometry, m, y=None):
    """Rows of images n0..n1-1 of the output gradient dh (N, Ho, Wo, C_out view): a view when
    dh is C-contiguous (channel-last dout), else a copy into a workspace; with the fused
    ReLU's output y (N, Ho, Wo, C_out) the rows of dout * (y > 0), in the workspace; dh a
    ``PendingGrad`` (the gradient of the batch norm or max pool after this conv): its rows
    computed into the workspace (then masked by y's). -> (k*Ho*Wo, C_out)."""
    if isinstance(dh, PendingGrad):
        shape = (m * g.ho * g.wo, g.c_out)
        r0, r1 = n0 * g.ho * g.wo, n1 * g.ho * g.wo
        buf = _workspace("dout", shape, dh.dtype)[:r1 - r0]
        scratch = _workspace("dout_scratch", shape, dh.dtype)[:r1 - r0] if dh.uses_scratch else None
        d = dh.rows_into(r0, r1, buf, scratch)
        if y is not None:                        # the fused ReLU's derivative, while in cache
            positive = _workspace("dout_mask", shape, np.bool_)[:r1 - r0]
            np.greater(y.reshape(-1, g.c_out)[r0:r1], 0, out=positive)
            d *= positive                        # = relu_masked's (y > 0) * dout, bit for bit
        return d
    d = dh[n0:n1]
    if y is not None or not d.flags.c_contiguous:
        buf = _workspace("dout", (m, g.ho, g.wo, g.c_out), dh.dtype)[:n1 - n0]
        if y is None:
            np.copyto(buf, d)
        else:
            relu_masked(d, y[n0:n1], buf)
        d = buf
    return d.reshape(-1, g.c_out)


def _weight_grad_chunk(x, drows, n0, n1, g: Geometry, m, dw_t, db, first):
    """dw_t (+)= cols^T @ drows for images n0..n1-1 (assigned when ``first``); the patches are
    rebuilt from x (keeping a first layer's whole-batch patches from the forward pass instead
    measured no faster and cost 14 MiB at the peak of a CIFAR training step).

    dw_t: (kh*kw*C_in, C_out), or (kh*kw*C_in + 1, C_out) when the patches carry the column
    of ones (``BIAS_IN_GEMM``: the last row collects db); else db (C_out,) += ones @ drows
    (a GEMV) when db is given."""
    cols = _patches(x, n0, n1, g, m, ones=dw_t.shape[0] == g.k + 1)
    cols_t = cols if _transposed_patches(g) else cols.T                  # (k [+1], rows)
    if first:
        _gemm(cols_t, drows, dw_t)
    else:
        part = _workspace("dw", dw_t.shape, dw_t.dtype)
        _gemm(cols_t, drows, part)
        dw_t += part
    if db is not None:
        ones = _workspace("ones", (m * g.ho * g.wo,), drows.dtype, init=_ones)
        db += np.matmul(ones[:drows.shape[0]], drows)                       # GEMV


def _dx_as_conv(g: Geometry) -> bool:
    """dx computed as a convolution of the padded dout (``DX_AS_CONV``): stride 1, padding
    below the kernel size, at most ``DX_AS_CONV_MAX_CHANNELS`` channels, C_out <= C_in unless
    both are at most ``DX_AS_CONV_NARROW``, not a first layer."""
    widest = max(g.c_in, g.c_out)
    return (DX_AS_CONV and g.sh == g.sw == 1 and g.ph <= g.kh - 1 and g.pw <= g.kw - 1
            and widest <= DX_AS_CONV_MAX_CHANNELS and (widest <= DX_AS_CONV_NARROW or g.c_out <= g.c_in)
            and not _transposed_patches(g))


def _input_grad_weights(w, g: Geometry):
    """W as dx needs it: with ``_dx_as_conv`` the flipped kernel (kh*kw*C_out, C_in), rows
    (i, j, o) = W[o, :, kh-1-i, kw-1-j]; for first layers (one GEMM serves every offset)
    (C_out, kh*kw*C_in), columns (i, j, c); else (kh, C_out, kw, C_in), so that ``[i, :, j]``
    is W[:, :, i, j] as a (C_out, C_in) matrix."""
    if _dx_as_conv(g):
        flipped = w[:, :, ::-1, ::-1].transpose(2, 3, 0, 1)
        return np.ascontiguousarray(flipped).reshape(g.kh * g.kw * g.c_out, g.c_in)
    if _transposed_patches(g):
        return np.ascontiguousarray(w.transpose(0, 2, 3, 1)).reshape(g.c_out, g.k)
    return np.ascontiguousarray(w.transpose(2, 0, 3, 1))


def _input_grad_chunk(drows, w_t, dxc, g: Geometry, m):
    """dxc (k, H, W, C_in), the chunk's part of dx, from drows (k*Ho*Wo, C_out); for first
    layers (``_transposed_patches``) dxc is (k, C_in, H, W) and the products are rows.

    ``_dx_as_conv``: one GEMM over dout's patches writes dxc's rows. First layers: one GEMM
    gives every offset's products as rows, (kh*kw*C_in, k*Ho*Wo), each added into the strided
    slice of dxc it reaches. Otherwise one GEMM per kernel offset (i, j), ``drows @ W[:, :, i,
    j]`` (k*Ho*Wo, C_in), added into the strided slice of dxc that offset reaches; when that
    offset maps the output grid exactly onto the input grid (stride 1, "same" size, e.g. the
    centre of a padded 3x3) its GEMM writes dxc directly and no zero fill is needed."""
    k = dxc.shape[0]
    if _dx_as_conv(g):
        # dx[y, x] = sum_{i,j} dpad[y + i, x + j] @ W[:, :, kh-1-i, kw-1-j]: one GEMM, rows of dx
        _gemm(_dout_patches(drows, k, g, m), w_t, dxc.reshape(-1, g.c_in))
        return
    rows = [_offset_range(i, g.ph, g.sh, g.h, g.ho) for i in range(g.kh)]
    cols = [_offset_range(j, g.pw, g.sw, g.w, g.wo) for j in range(g.kw)]
    offsets = [(i, j) for i in range(g.kh) if rows[i][1] > rows[i][0]
               for j in range(g.kw) if cols[j][1] > cols[j][0]]
    if _transposed_patches(g):
        # first layers: dxc is (k, C_in, H, W); all offsets' products as ROWS, (kh*kw*C_in, rows)
        n_rows = drows.shape[0]
        prod = _workspace("dx_allT", (g.k, m * g.ho * g.wo), drows.dtype)[:, :n_rows]
        _gemm(w_t.T, drows.T, prod)
        t6 = prod.reshape(g.kh, g.kw, g.c_in, k, g.ho, g.wo)
        dxc[...] = 0
        dxl = dxc.transpose(0, 2, 3, 1)                                  # (k, H, W, C) view
        for i, j in offsets:
            _scatter_add(dxl, t6[i, j].transpose(1, 2, 3, 0), rows[i], cols[j], g.sh, g.sw)
        return
    whole = (0, g.ho, 0)
    direct = next(((i, j) for i, j in offsets if g.ho == g.h and g.wo == g.w
                   and rows[i] == whole and cols[j] == (0, g.wo, 0)), None)
    if direct is not None:
        _gemm(drows, w_t[direct[0], :, direct[1]], dxc.reshape(-1, g.c_in))
    else:
        dxc[...] = 0
    prod = _workspace("dx_offset", (m * g.ho * g.wo, g.c_in), drows.dtype)[:drows.shape[0]]
    t4 = prod.reshape(k, g.ho, g.wo, g.c_in)
    for i, j in offsets:
        if (i, j) != direct:
            _gemm(drows, w_t[i, :, j], prod)
            _scatter_add(dxc, t4, rows[i], cols[j], g.sh, g.sw)
