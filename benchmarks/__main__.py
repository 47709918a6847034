"""Entry point: ``python -m benchmarks [--quick] [--out benchmarks/results]`` (see run.py)."""
from .run import main

main()
