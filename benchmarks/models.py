"""The two reference models (Fashion-MNIST CNN, CIFAR CNN) in nnlite and in PyTorch, and one
training step (forward + backward + SGD update, float32) for each framework."""
from __future__ import annotations

import numpy as np

from nnlite import no_grad
import nnlite.nn as nn
from nnlite.losses import SoftmaxCrossEntropy

LR = 0.01

#: model name -> (input shape without batch, number of classes)
INPUTS = {"fmnist_cnn": ((1, 28, 28), 10), "cifar_cnn": ((3, 32, 32), 10),
          "resnet_encoder": ((3, 32, 32), 10)}

#: the ResNet encoder's stages: (in channels, out channels, stride) of its basic blocks
RESNET_BLOCKS = ((32, 32, 1), (32, 64, 2), (64, 128, 2))


def nnlite_model(name: str, rng):
    if name == "fmnist_cnn":
        m = nn.Sequential(
            nn.Conv2d(1, 32, 3, padding=1, rng=rng), nn.ReLU(), nn.MaxPool2d(2),
            nn.Conv2d(32, 64, 3, padding=1, rng=rng), nn.ReLU(), nn.MaxPool2d(2),
            nn.Flatten(), nn.Linear(3136, 128, rng=rng), nn.ReLU(), nn.Dropout(0.5, rng=rng),
            nn.Linear(128, 10, rng=rng))
    elif name == "cifar_cnn":
        m = nn.Sequential(
            nn.Conv2d(3, 32, 3, padding=1, rng=rng), nn.ReLU(),
            nn.Conv2d(32, 32, 3, padding=1, rng=rng), nn.ReLU(), nn.MaxPool2d(2),
            nn.Conv2d(32, 64, 3, padding=1, rng=rng), nn.ReLU(),
            nn.Conv2d(64, 64, 3, padding=1, rng=rng), nn.ReLU(), nn.MaxPool2d(2),
            nn.Flatten(), nn.Linear(4096, 256, rng=rng), nn.ReLU(), nn.Linear(256, 10, rng=rng))
    elif name == "resnet_encoder":
        # a CIFAR stem (3x3 conv + batch norm + ReLU) and three basic blocks, as an SSL encoder
        m = nn.Sequential(
            nn.Conv2d(3, 32, 3, padding=1, bias=False, rng=rng), nn.BatchNorm2d(32), nn.ReLU(),
            *(nn.basic_block(i, o, s, rng=rng) for i, o, s in RESNET_BLOCKS),
            nn.GlobalAvgPool2d(), nn.Linear(128, 10, rng=rng))
    else:
        raise ValueError(name)
    m[0].needs_input_grad = False        # as autograd: no gradient for the input images
    return m


def torch_model(name: str, torch, nnlite_twin=None):
    """The same architecture in PyTorch; with ``nnlite_twin`` its weights are copied over."""
    tn = torch.nn
    if name == "fmnist_cnn":
        m = tn.Sequential(
            tn.Conv2d(1, 32, 3, padding=1), tn.ReLU(), tn.MaxPool2d(2),
            tn.Conv2d(32, 64, 3, padding=1), tn.ReLU(), tn.MaxPool2d(2),
            tn.Flatten(), tn.Linear(3136, 128), tn.ReLU(), tn.Dropout(0.5), tn.Linear(128, 10))
    elif name == "cifar_cnn":
        m = tn.Sequential(
            tn.Conv2d(3, 32, 3, padding=1), tn.ReLU(), tn.Conv2d(32, 32, 3, padding=1), tn.ReLU(),
            tn.MaxPool2d(2), tn.Conv2d(32, 64, 3, padding=1), tn.ReLU(),
            tn.Conv2d(64, 64, 3, padding=1), tn.ReLU(), tn.MaxPool2d(2),
            tn.Flatten(), tn.Linear(4096, 256), tn.ReLU(), tn.Linear(256, 10))
    elif name == "resnet_encoder":
        class Block(tn.Module):
            def __init__(self, i, o, s):
                super().__init__()
                self.block = tn.Sequential(tn.Conv2d(i, o, 3, s, 1, bias=False), tn.BatchNorm2d(o), tn.ReLU(),
                                           tn.Conv2d(o, o, 3, 1, 1, bias=False), tn.BatchNorm2d(o))
                self.shortcut = (tn.Sequential(tn.Conv2d(i, o, 1, s, bias=False), tn.BatchNorm2d(o))
                                 if s != 1 or i != o else tn.Identity())

            def forward(self, x):
                return torch.relu(self.block(x) + self.shortcut(x))
        m = tn.Sequential(tn.Conv2d(3, 32, 3, padding=1, bias=False), tn.BatchNorm2d(32), tn.ReLU(),
                          *(Block(i, o, s) for i, o, s in RESNET_BLOCKS),
                          tn.AdaptiveAvgPool2d(1), tn.Flatten(), tn.Linear(128, 10))
    else:
        raise ValueError(name)
    if nnlite_twin is not None:
        with torch.no_grad():
            for (name_t, p_t), (name_n, p_n) in zip(m.named_parameters(), nnlite_twin.named_parameters()):
                if tuple(p_t.shape) != p_n.data.shape:
                    raise RuntimeError(f"weight mismatch {name_t} {tuple(p_t.shape)} vs {name_n} {p_n.data.shape}")
                p_t.copy_(torch.from_numpy(p_n.data))
    return m


def batch(name: str, n: int, seed: int = 0):
    shape, classes = INPUTS[name]
    rng = np.random.default_rng(seed)
    x = rng.random((n,) + shape, dtype=np.float32)
    y = rng.integers(0, classes, n)
    return x, y


def make_sgd(model):
    """nnlite.optim.SGD when it imports; else a plain in-loop update of trainable parameters."""
    try:
        from nnlite.optim import SGD
        opt = SGD(model.parameters(), lr=LR)
        return opt.step, "nnlite.optim.SGD"
    except Exception:                                     # noqa: BLE001 (optim not there yet)
        params = [p for p in model.parameters() if p.trainable]

        def step():
            for p in params:
                p.data -= np.asarray(LR, dtype=p.data.dtype) * p.grad
        return step, "in-loop p.data -= lr * p.grad"


def nnlite_infer_fn(name: str, n: int = 256, seed: int = 0):
    """A zero-argument eval-mode forward pass of the nnlite model on a fixed batch, under
    ``nnlite.no_grad()`` (as PyTorch's twin runs under ``torch.no_grad()``)."""
    model = nnlite_model(name, np.random.default_rng(seed))
    model.eval()
    x, _ = batch(name, n, seed)

    def run():
        with no_grad():
            return model.forward(x)
    return run, {"model": model, "x": x}


def torch_infer_fn(name: str, torch, n: int = 256, seed: int = 0, nnlite_twin=None):
    """The same in PyTorch: eval mode, ``torch.no_grad()``."""
    model = torch_model(name, torch, nnlite_twin)
    model.eval()
    x, _ = batch(name, n, seed)
    xt = torch.from_numpy(x)

    def run():
        with torch.no_grad():
            return model(xt)
    return run, {"model": model, "x": xt}


def nnlite_step_fn(name: str, n: int = 128, seed: int = 0):
    """A zero-argument training step of the nnlite model on a fixed batch, and a description."""
    model = nnlite_model(name, np.random.default_rng(seed))
    x, y = batch(name, n, seed)
    loss = SoftmaxCrossEntropy()
    update, how = make_sgd(model)

    def step():
        model.zero_grad()
        out = model.forward(x)
        value = loss.forward(out, y)
        model.backward(loss.backward())
        update()
        return value
    return step, {"model": model, "x": x, "y": y, "sgd": how}


def torch_step_fn(name: str, torch, n: int = 128, seed: int = 0, nnlite_twin=None):
    model = torch_model(name, torch, nnlite_twin)
    x, y = batch(name, n, seed)
    xt, yt = torch.from_numpy(x), torch.from_numpy(y)
    opt = torch.optim.SGD(model.parameters(), lr=LR)
    f = torch.nn.functional

    def step():
        opt.zero_grad()
        loss = f.cross_entropy(model(xt), yt)
        loss.backward()
        opt.step()
        return loss
    return step, {"model": model, "x": xt, "y": yt, "sgd": "torch.optim.SGD"}
