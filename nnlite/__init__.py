"""nnlite: a from-scratch, pure-NumPy neural-network toolkit with hand-written backward passes."""
__version__ = "0.1.0"
