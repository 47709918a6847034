"""The progress bar fits the terminal: no redraw wraps on a narrow (60-column) pane."""
import io
import os
import re

import numpy as np
import pytest

import nnlite.nn as nn
from nnlite.losses import SoftmaxCrossEntropy
from nnlite.optim import SGD
from nnlite.train import ProgressBar, Trainer


def _trainer(bar, n=256, batch=16):
    rng = np.random.default_rng(0)
    x = rng.standard_normal((n, 8)).astype(np.float32)
    y = (x[:, 0] > 0).astype(np.int64)
    model = nn.Sequential(nn.Linear(8, 16, rng=rng), nn.ReLU(), nn.Linear(16, 2, rng=rng))
    tr = Trainer(model, SoftmaxCrossEntropy(), SGD(model.parameters(), lr=0.1), batch_size=batch, rng=1,
                 progress=bar)
    return tr, x, y


def _redraws(text):
    """Every bar state drawn: the pieces between carriage returns / newlines, without padding."""
    return [s.rstrip(" ") for s in re.split(r"[\r\n]", text) if s.strip()]


@pytest.mark.parametrize("columns", [60, 40, 20])
def test_bar_lines_fit_the_given_width(columns):
    out = io.StringIO()
    bar = ProgressBar(stream=out, force=True, min_interval=0.0, columns=columns)
    tr, x, y = _trainer(bar)
    tr.fit(x, y, epochs=2)
    text = out.getvalue()
    bar_states = [s for s in _redraws(text) if re.search(r"\d+/\d+ ", s) and " - " not in s]
    assert len(bar_states) >= 16                          # one per batch and epoch
    for piece in text.replace("\n", "\r").split("\r"):    # padding included: nothing may wrap
        if piece and " - " not in piece:                  # the epoch summary line may be longer
            assert len(piece) <= columns - 1, (columns, piece)
    if columns >= 60:
        assert all("[" in s and "]" in s for s in bar_states)    # still a bar on 60 columns
        assert all("loss" in s for s in bar_states)
    assert text.count("\n") == 2


def test_bar_follows_the_terminal_size(monkeypatch):
    monkeypatch.setenv("COLUMNS", "60")       # shutil.get_terminal_size reads $COLUMNS first
    out = io.StringIO()
    tr, x, y = _trainer(ProgressBar(stream=out, force=True, min_interval=0.0))
    tr.fit(x, y, epochs=1)
    pieces = [p for p in out.getvalue().replace("\n", "\r").split("\r") if p and " - " not in p]
    assert pieces and max(len(p) for p in pieces) <= 59
    monkeypatch.setenv("COLUMNS", "200")
    out = io.StringIO()
    tr, x, y = _trainer(ProgressBar(stream=out, force=True, min_interval=0.0, width=30))
    tr.fit(x, y, epochs=1)
    assert "[" + "=" * 30 + "]" in out.getvalue()       # a wide terminal gets the full bar
    assert "img/s" in out.getvalue() and "ETA" in out.getvalue()


def test_wide_default_keeps_every_field():
    out = io.StringIO()
    tr, x, y = _trainer(ProgressBar(stream=out, force=True, min_interval=0.0, columns=120))
    tr.fit(x, y, epochs=1)
    last = [s for s in _redraws(out.getvalue()) if " - " not in s][-1]
    for field in ("Epoch 1/1", "16/16", "img/s", "ETA", "loss", "acc"):
        assert field in last, last


@pytest.mark.parametrize("columns", [0, 19, 2.5, True])
def test_bad_columns_rejected(columns):
    with pytest.raises(ValueError, match="columns"):
        ProgressBar(columns=columns)


def test_terminal_size_unknown_falls_back_to_80(monkeypatch):
    monkeypatch.delenv("COLUMNS", raising=False)
    bar = ProgressBar(stream=io.StringIO(), force=True)
    assert 19 <= bar._budget() <= max(os.get_terminal_size().columns if os.isatty(1) else 80, 80)
