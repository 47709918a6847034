"""Autoencoder models (issue 16): shapes, batched encode/decode, and a short real training run."""
import numpy as np
import pytest

from nnlite.data import load_fashion_mnist
from nnlite.losses import BCE, MSE
from nnlite.models import Autoencoder, conv_autoencoder, dense_autoencoder
from nnlite.optim import Adam
from nnlite.train import Trainer


@pytest.mark.parametrize("shape", [(1, 28, 28), (3, 32, 32), (1, 7, 9)])
@pytest.mark.parametrize("latent", [2, 8])
def test_conv_autoencoder_shapes_any_size(shape, latent):
    ae = conv_autoencoder(shape, latent=latent, filters=(4, 6), rng=0)
    x = np.random.default_rng(0).uniform(0, 1, (3, *shape)).astype(np.float32)
    out = ae.forward(x)
    assert out.shape == x.shape and out.dtype == np.float32 and 0 <= out.min() and out.max() <= 1
    z = ae.encode(x, batch_size=2)
    assert z.shape == (3, latent) and z.dtype == np.float32
    assert ae.decode(z, batch_size=2).shape == x.shape
    assert isinstance(ae, Autoencoder) and ae.output_shape(x.shape) == x.shape


@pytest.mark.parametrize("up", ["nearest", "bilinear"])
def test_conv_autoencoder_with_upsampling_layers(up):
    ae = conv_autoencoder((1, 9, 10), latent=3, filters=(2, 4), rng=0, upsampling=up)
    x = np.random.default_rng(0).uniform(0, 1, (2, 1, 9, 10)).astype(np.float32)
    assert ae.forward(x).shape == x.shape
    assert any(type(m).__name__ == "Upsample" for m in ae.decoder)
    with pytest.raises(ValueError, match="upsampling"):
        conv_autoencoder(upsampling="cubic")


def test_encode_decode_batched_equal_whole_batch_and_restore_modes():
    ae = conv_autoencoder((1, 12, 12), latent=5, filters=(3, 4), rng=1, batch_norm=True, dtype=np.float64)
    x = np.random.default_rng(1).uniform(0, 1, (7, 1, 12, 12))
    ae.train()
    ae.forward(x)                                          # give batch norm running statistics
    z_all = ae.encode(x, batch_size=7)
    np.testing.assert_allclose(ae.encode(x, batch_size=3), z_all, rtol=1e-12)
    np.testing.assert_allclose(ae.decode(z_all, batch_size=2), ae.decode(z_all, batch_size=7), rtol=1e-12)
    assert all(m.training for _, m in ae.named_modules())   # train mode restored
    logits_ae = conv_autoencoder((1, 12, 12), latent=5, filters=(3,), rng=1, output="logits")
    rec = logits_ae.reconstruct(x.astype(np.float32))
    assert rec.min() > 0 and rec.max() < 1


def test_autoencoder_errors():
    with pytest.raises(ValueError, match="latent"):
        conv_autoencoder(latent=0)
    with pytest.raises(TypeError, match="latent"):
        dense_autoencoder(latent=2.5)
    with pytest.raises(ValueError, match="output"):
        conv_autoencoder(output="tanh")
    with pytest.raises(ValueError, match="input_shape"):
        dense_autoencoder(input_shape=(28, 28))
    ae = dense_autoencoder(latent=4, rng=0)
    with pytest.raises(ValueError, match=r"\(N, 4\)"):
        ae.decode(np.zeros((2, 3), np.float32))


@pytest.mark.parametrize("kind,loss", [("conv", MSE()), ("dense", BCE())])
def test_reconstruction_error_falls_on_real_images(kind, loss):
    ds = load_fashion_mnist(n_train=1024, n_test=256)        # real images: full set or the bundled subset
    x, x_test = ds.x_train, ds.x_test
    make = conv_autoencoder if kind == "conv" else dense_autoencoder
    ae = make(latent=16, rng=0) if kind == "dense" else make(latent=16, filters=(8, 16), rng=0)
    trainer = Trainer(ae, loss, Adam(ae.parameters(), lr=3e-3), batch_size=32, rng=0, progress=False)
    before = float(np.mean((ae.reconstruct(x_test) - x_test) ** 2))
    hist = trainer.fit(x, x, epochs=6)                       # targets = inputs, float targets
    after = float(np.mean((ae.reconstruct(x_test) - x_test) ** 2))
    assert hist["loss"][-1] < hist["loss"][0]
    assert after < 0.6 * before, (before, after)
    assert after < 0.05                                        # predicting the mean image gives ~0.09
