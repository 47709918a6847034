"""An input gradient handed to the layer before unwritten (engine storey).

A layer's backward may return, instead of dx, a ``PendingGrad``: a recipe for dx that the
``Conv2d`` before it computes rows of, chunk by chunk, into its own in-cache workspace right
before its GEMMs read them (``nnlite.fast.conv._dout_rows``). dx is then never written to
memory nor read back (one pass over the activations fewer each way, and one activation-sized
array less at the backward's peak). ``nn.Sequential.backward`` decides where it is used; the
producers are batch norm (``batchnorm.BatchNormPendingGrad``) and max pooling
(``pool.MaxPoolPendingGrad``). Every value is the same element-wise expression either way, so
results are bit-identical to the written dx.
"""
from __future__ import annotations


class PendingGrad:
    """dx, not yet written. Subclasses set ``shape`` and ``dtype`` (those of dx, the forward's
    input, (N, C, H, W) or (N, D)) and implement:

    * ``rows_into(r0, r1, out, scratch=None)``: rows r0:r1 of dx's channel-last (M, C) matrix
      (M = N*H*W; r0, r1 whole samples) into ``out`` ((r1 - r0, C), C-contiguous), which is
      returned; ``scratch`` an array of out's shape it may use as a temporary;
    * ``materialize()``: dx, the whole array, as the plain backward returns it;
    * ``uses_scratch``: whether ``rows_into`` wants the ``scratch`` (else it is not allocated).
    """
    shape: tuple
    dtype: object
    uses_scratch = False

    def rows_into(self, r0, r1, out, scratch=None):
        raise NotImplementedError

    def materialize(self):
        raise NotImplementedError
