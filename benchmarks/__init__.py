"""nnlite benchmark suite: loop reference vs vectorized nnlite vs PyTorch, measured as ratios
of contenders timed interleaved in the same run. Run ``python -m benchmarks --help``."""
