import os
import runpy
import sys
from pathlib import Path

import pytest

sys.path.insert(0, os.path.dirname(__file__))

EXAMPLES = Path(__file__).resolve().parents[1] / "examples"
_BLAS_LIMIT = pytest.StashKey()      # the xdist worker's BLAS/OpenMP limit, held for the session


@pytest.fixture
def run_example(monkeypatch, capsys):
    """``run(script, *argv) -> (exit code, stdout, stderr)``: an example run in this process (``runpy``,
    one BLAS thread as the subprocess runs get). For argument checks (--help, a bad flag: argparse exits
    with code 2 before any work starts) and for runs of an example that another test of the same file
    also runs in a subprocess (the real exit code); each in a subprocess would cost a Python start and
    the imports again (0.3-0.5 s for an argument check, 1-1.5 s for a whole run). ``SystemExit("message")``
    gives exit code 1 and the message on stderr, as the interpreter does."""
    from threadpoolctl import threadpool_limits

    def run(script, *argv):
        monkeypatch.setattr(sys, "argv", [str(EXAMPLES / script), *map(str, argv)])
        monkeypatch.setenv("PYTHONPATH", os.environ.get("PYTHONPATH", ""))   # cifar10_classifiers edits it
        monkeypatch.syspath_prepend(str(EXAMPLES))
        capsys.readouterr()
        code, message = 0, ""
        with threadpool_limits(1):
            try:
                runpy.run_path(str(EXAMPLES / script), run_name="__main__")
            except SystemExit as exc:
                if isinstance(exc.code, str):
                    code, message = 1, exc.code + "\n"
                else:
                    code = 0 if exc.code is None else exc.code
        cap = capsys.readouterr()
        return code, cap.out, cap.err + message
    return run


def pytest_configure(config):
    """Under pytest-xdist (``-n auto``, the default in setup.cfg) each worker runs its BLAS and OpenMP
    code on one thread: the workers already fill the cores, and BLAS threads spinning beside another
    worker's process only take turns with it. Serial runs (``-n 0``) keep the default threads."""
    if os.environ.get("PYTEST_XDIST_WORKER"):
        from threadpoolctl import threadpool_limits
        config.stash[_BLAS_LIMIT] = threadpool_limits(1)

