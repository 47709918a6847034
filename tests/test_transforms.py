"""Batched augmentations: shapes/dtypes, determinism, identities, geometry, ranges, vectorization."""
import numpy as np
import pytest

from nnlite.data.transforms import (
    ColorJitter,
    Compose,
    GaussianBlur,
    GaussianNoise,
    RandomCrop,
    RandomGrayscale,
    RandomHorizontalFlip,
    RandomResizedCrop,
    RandomRotation,
    RandomShift,
)


def batch(n=8, c=3, h=12, w=12, dtype=np.float32, seed=0):
    return np.random.default_rng(seed).random((n, c, h, w)).astype(dtype)


# (transform, output spatial size or None for unchanged, stochastic?)
CASES = [
    (RandomCrop(10, padding=2), (10, 10)),
    (RandomCrop((8, 12), padding=0, pad_mode="constant"), (8, 12)),
    (RandomCrop(12, padding=3, pad_mode="reflect"), None),
    (RandomHorizontalFlip(0.5), None),
    (RandomShift(3), None),
    (RandomRotation(30), None),
    (RandomRotation(30, interpolation="nearest"), None),
    (RandomResizedCrop(9), (9, 9)),
    (RandomResizedCrop((16, 10), interpolation="nearest"), (16, 10)),
    (ColorJitter(0.4, 0.4, 0.4), None),
    (RandomGrayscale(0.5), None),
    (GaussianNoise(0.1), None),
    (GaussianBlur(5, (0.5, 2.0)), None),
    (Compose([RandomCrop(12, 2), RandomHorizontalFlip(), ColorJitter(0.2, 0.2)]), None),
]
IDS = [repr(t).split("(")[0] + str(i) for i, (t, _) in enumerate(CASES)]


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("t,size", CASES, ids=IDS)
def test_shape_dtype_range_determinism(t, size, dtype):
    x = batch(dtype=dtype)
    x0 = x.copy()
    out = t(x, np.random.default_rng(1))
    exp_hw = size if size is not None else x.shape[2:]
    assert out.shape == x.shape[:2] + tuple(exp_hw)
    assert out.dtype == dtype
    np.testing.assert_array_equal(x, x0)  # input untouched
    assert out.min() >= 0.0 and out.max() <= 1.0
    assert np.all(np.isfinite(out))
    # same seed / same generator state -> same result; other seed -> different
    np.testing.assert_array_equal(out, t(x, 1))
    g1, g2 = np.random.default_rng(42), np.random.default_rng(42)
    np.testing.assert_array_equal(t(x, g1), t(x, g2))
    np.testing.assert_array_equal(t(x, g1), t(x, g2))  # states advanced identically
    assert not np.array_equal(t(x, 1), t(x, 2))


@pytest.mark.parametrize("t", [RandomCrop(4), RandomRotation(10), GaussianBlur(3)])
def test_bad_input_is_rejected(t):
    with pytest.raises(TypeError, match="floating"):
        t(np.zeros((2, 1, 8, 8), np.uint8), 0)
    with pytest.raises(ValueError, match=r"\(N, C, H, W\)"):
        t(np.zeros((1, 8, 8), np.float32), 0)
    with pytest.raises(TypeError, match="Generator"):
        t(np.zeros((2, 1, 8, 8), np.float32), None)


def test_bad_parameters_are_rejected():
    with pytest.raises(ValueError):
        RandomHorizontalFlip(1.5)
    with pytest.raises(ValueError):
        RandomCrop(0)
    with pytest.raises(ValueError):
        RandomShift(-1)
    with pytest.raises(ValueError):
        GaussianBlur(4)
    with pytest.raises(ValueError):
        RandomResizedCrop(8, scale=(0.5, 2.0))
    with pytest.raises(ValueError):
        ColorJitter(brightness=(1.5, 0.5))
    with pytest.raises(ValueError, match="larger"):
        RandomCrop(20)(batch(h=12, w=12), 0)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("t", [
    RandomHorizontalFlip(0.0),
    RandomShift(0),
    RandomRotation(0),
    RandomRotation(0, interpolation="nearest"),
    RandomCrop(12, padding=0),
    RandomResizedCrop(12, scale=(1.0, 1.0), ratio=(1.0, 1.0)),
    ColorJitter(0, 0, 0),
    RandomGrayscale(0.0),
    GaussianNoise(0.0),
    GaussianBlur(1),
    GaussianBlur(5, sigma=1e-3),
    Compose([]),
], ids=lambda t: type(t).__name__)
def test_identity_cases(t, dtype):
    x = batch(dtype=dtype)
    out = t(x, 0)
    np.testing.assert_array_equal(out, x)
    assert out is not x


def test_flip_really_flips():
    x = batch(n=200, c=2, h=3, w=5)
    out = RandomHorizontalFlip(1.0)(x, 0)
    np.testing.assert_array_equal(out[:, :, :, 0], x[:, :, :, 4])
    np.testing.assert_array_equal(out, x[..., ::-1])
    half = RandomHorizontalFlip(0.5)(x, 0)
    flipped = np.array([np.array_equal(h, f) for h, f in zip(half, x[..., ::-1])])
    kept = np.array([np.array_equal(h, k) for h, k in zip(half, x)])
    assert np.all(flipped ^ kept)  # each sample is one or the other
    assert 70 < flipped.sum() < 130  # p = 0.5 over 200 samples


def test_crop_is_a_window_of_the_padded_image():
    n, h, w, p, s = 64, 6, 7, 2, 5
    x = (np.arange(n * 2 * h * w, dtype=np.float64) + 1).reshape(n, 2, h, w)
    out = RandomCrop(s, padding=p)(x, 3)
    padded = np.pad(x, ((0, 0), (0, 0), (p, p), (p, p)))
    offsets = set()
    for i in range(n):  # brute-force search in the test only
        hits = [(oy, ox) for oy in range(h + 2 * p - s + 1) for ox in range(w + 2 * p - s + 1)
                if np.array_equal(out[i], padded[i, :, oy:oy + s, ox:ox + s])]
        assert len(hits) == 1
        offsets.add(hits[0])
    assert len(offsets) > 20  # per-sample offsets, spread over the 4 x 5 possible ones


def test_shift_moves_content():
    x = batch(n=32, c=1, h=9, w=9, dtype=np.float64) + 1.0  # strictly positive, fill is 0
    out = RandomShift(2)(x, 0)
    seen = set()
    for i in range(32):
        found = None
        for dy in range(-2, 3):
            for dx in range(-2, 3):
                ref = np.zeros_like(x[i])
                ref[:, max(dy, 0):9 + min(dy, 0), max(dx, 0):9 + min(dx, 0)] = \
                    x[i, :, max(-dy, 0):9 - max(dy, 0), max(-dx, 0):9 - max(dx, 0)]
                if np.array_equal(out[i], ref):
                    found = (dy, dx)
        assert found is not None
        seen.add(found)
    assert len(seen) > 5


def test_rotation_matches_rot90_and_rot180():
    x = batch(n=4, c=3, h=7, w=7, dtype=np.float64)
    r90 = RandomRotation((90, 90))(x, 0)
    np.testing.assert_allclose(r90, np.rot90(x, 1, axes=(2, 3)), atol=1e-9)
    r90n = RandomRotation((90, 90), interpolation="nearest")(x, 0)
    np.testing.assert_array_equal(r90n, np.rot90(x, 1, axes=(2, 3)))
    r180 = RandomRotation((180, 180))(x, 0)
    np.testing.assert_allclose(r180, x[..., ::-1, ::-1], atol=1e-9)
    rm90 = RandomRotation((-90, -90))(x.astype(np.float32), 0)
    np.testing.assert_allclose(rm90, np.rot90(x, -1, axes=(2, 3)), atol=1e-5)


def test_rotation_angles_are_per_sample_and_keep_centre():
    x = np.repeat(batch(n=1, c=1, h=9, w=9, dtype=np.float64), 16, axis=0)
    out = RandomRotation(45)(x, 0)
    np.testing.assert_allclose(out[:, 0, 4, 4], x[:, 0, 4, 4])  # centre pixel fixed
    distinct = {out[i].tobytes() for i in range(16)}
    assert len(distinct) == 16
    # corners of a rotated all-ones image are filled with the fill value
    ones = np.ones((2, 1, 9, 9))
    rot = RandomRotation((45, 45), fill=0.0)(ones, 0)
    assert rot[0, 0, 0, 0] == 0.0 and rot[0, 0, 4, 4] == 1.0


def test_resized_crop_of_a_ramp_is_a_ramp():
    h = w = 20
    ramp = np.tile(np.arange(w, dtype=np.float64) / (w - 1), (h, 1))
    x = np.broadcast_to(ramp, (16, 1, h, w)).copy()
    out = RandomResizedCrop(10, scale=(0.25, 0.25), ratio=(1.0, 1.0))(x, 0)
    # the box is 10x10 of a 20x20 image: output columns step by (10/10)/(w-1)
    np.testing.assert_allclose(np.diff(out, axis=3), 1 / (w - 1), atol=1e-9)
    np.testing.assert_allclose(np.diff(out, axis=2), 0, atol=1e-12)
    starts = out[:, 0, 0, 0] * (w - 1) - 0.0  # left edge of each box
    assert np.all(starts >= -1e-9) and np.all(starts <= 10 + 1e-9)
    assert len(np.unique(np.round(starts, 6))) > 8  # boxes vary per sample
    # an impossible ratio falls back to the central box
    fb = RandomResizedCrop(20, scale=(1.0, 1.0), ratio=(10.0, 10.0))(x, 0)
    assert fb.shape == (16, 1, 20, 20) and np.all(np.isfinite(fb))


def test_color_jitter_effects():
    x = batch(n=6, dtype=np.float64) * 0.4
    np.testing.assert_allclose(ColorJitter(brightness=(2.0, 2.0))(x, 0), x * 2)
    # saturation 0 -> gray (all channels equal to the luma)
    g = ColorJitter(saturation=(0.0, 0.0))(x, 0)
    luma = 0.299 * x[:, 0] + 0.587 * x[:, 1] + 0.114 * x[:, 2]
    for c in range(3):
        np.testing.assert_allclose(g[:, c], luma)
    # contrast 0 -> every pixel equals the image's mean gray
    k = ColorJitter(contrast=(0.0, 0.0))(x, 0)
    np.testing.assert_allclose(k, np.broadcast_to(luma.mean(axis=(1, 2))[:, None, None, None], x.shape))
    # gray images are unaffected by saturation; 1-channel input skips it; 2 channels refused
    gray3 = np.repeat(x[:, :1], 3, axis=1)
    np.testing.assert_allclose(ColorJitter(saturation=0.9)(gray3, 0), gray3, atol=1e-12)
    one = x[:, :1]
    np.testing.assert_array_equal(ColorJitter(saturation=0.9)(one, 0), one)
    with pytest.raises(ValueError, match="channels"):
        ColorJitter(saturation=0.5)(x[:, :2], 0)
    # factors differ per sample
    b = ColorJitter(brightness=0.5, clip=False)(np.ones((8, 1, 2, 2)), 0)
    assert len(np.unique(b[:, 0, 0, 0])) == 8


def test_random_grayscale():
    x = batch(n=6, dtype=np.float64)
    g = RandomGrayscale(1.0)(x, 0)
    luma = 0.299 * x[:, 0] + 0.587 * x[:, 1] + 0.114 * x[:, 2]
    for c in range(3):
        np.testing.assert_allclose(g[:, c], luma)
    np.testing.assert_array_equal(RandomGrayscale(1.0)(x[:, :1], 0), x[:, :1])
    with pytest.raises(ValueError):
        RandomGrayscale(1.0)(x[:, :2], 0)


def test_gaussian_noise_statistics_and_clip():
    x = np.full((4, 3, 32, 32), 0.5)
    d = GaussianNoise(0.05, clip=False)(x, 0) - x
    assert abs(d.mean()) < 0.005 and abs(d.std() - 0.05) < 0.005
    big = GaussianNoise(2.0, clip=True)(x.astype(np.float32), 0)
    assert big.min() == 0.0 and big.max() == 1.0 and big.dtype == np.float32
    unclipped = GaussianNoise(2.0, clip=False)(x, 0)
    assert unclipped.min() < 0 and unclipped.max() > 1


def test_gaussian_blur():
    const = np.full((3, 2, 10, 10), 0.7)
    np.testing.assert_allclose(GaussianBlur(5, (0.5, 3.0))(const, 0), const)
    imp = np.zeros((1, 1, 11, 11))
    imp[0, 0, 5, 5] = 1.0
    k = GaussianBlur(5, sigma=1.0)(imp, 0)[0, 0]
    np.testing.assert_allclose(k, k.T)  # symmetric separable kernel
    np.testing.assert_allclose(k, k[::-1, ::-1])
    assert abs(k.sum() - 1.0) < 1e-12 and k[5, 5] == k.max()
    t = np.arange(-2, 3)
    g = np.exp(-t ** 2 / 2.0)
    np.testing.assert_allclose(k[3:8, 3:8], np.outer(g, g) / g.sum() ** 2)
    noise = batch(n=4, c=1, h=16, w=16, dtype=np.float64)
    assert GaussianBlur(7, (1.5, 2.0))(noise, 0).std() < 0.6 * noise.std()
    # sigma differs per sample
    same = np.repeat(noise[:1], 6, axis=0)
    out = GaussianBlur(5, (0.3, 3.0))(same, 0)
    assert len({o.tobytes() for o in out}) == 6


def test_compose_shares_one_generator():
    a, b = RandomCrop(10, padding=1), RandomRotation(20)
    x = batch()
    g = np.random.default_rng(9)
    np.testing.assert_array_equal(Compose([a, b])(x, 9), b(a(x, g), g))
    with pytest.raises(TypeError):
        Compose([a, 3])


class CountingGenerator(np.random.Generator):
    """Generator that counts sampling calls (to check there is no per-sample loop)."""

    SAMPLERS = {"random", "integers", "uniform", "standard_normal", "normal", "choice",
                "permutation", "shuffle", "binomial", "exponential"}

    def __init__(self, seed):
        super().__init__(np.random.PCG64(seed))
        self.calls = 0

    def __getattribute__(self, name):
        attr = super().__getattribute__(name)
        if name in CountingGenerator.SAMPLERS:
            super().__getattribute__("__dict__")["calls"] += 1
        return attr


@pytest.mark.parametrize("t,size", CASES, ids=IDS)
def test_no_python_loop_over_samples(t, size):
    counts = []
    for n in (2, 64):
        g = CountingGenerator(0)
        t(batch(n=n), g)
        counts.append(g.calls)
    assert counts[0] == counts[1] and counts[0] >= 1  # RNG calls do not grow with N
    # a large batch goes through in one vectorized pass (no timing assertion)
    out = t(batch(n=1024, h=16, w=16), 0)
    assert out.shape[0] == 1024
