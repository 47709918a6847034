"""nnlite.data: reading, finding, preprocessing and augmenting image data sets.

Conventions: readers (:mod:`~nnlite.data.formats`) return ``uint8`` NHWC images
``(N, H, W, C)`` and ``int64`` labels ``(N,)``; high-level loaders
(:mod:`~nnlite.data.datasets`) return a :class:`Dataset` with ``float32`` NCHW images
in ``[0, 1]``; augmentations (:mod:`~nnlite.data.transforms`) act on float NCHW
batches as ``t(x, rng)``. Randomness always comes from an explicit ``rng``
(a ``numpy.random.Generator`` or an int seed), never from NumPy's global state.
"""
from .datasets import (
    FASHION_MNIST_CLASSES,
    MNIST_CLASSES,
    Dataset,
    bundled_path,
    load_cifar10,
    load_fashion_mnist,
    load_hdf5,
    load_image_folder,
    load_mnist,
    load_svhn,
)
from .formats import (
    CIFAR10_CLASSES,
    RestrictedUnpickler,
    read_cifar10_binary,
    read_cifar10_binary_batch,
    read_cifar10_python,
    read_cifar_python_batch,
    read_hdf5,
    read_idx,
    read_idx_images,
    read_idx_labels,
    read_image_folder,
    read_npz,
    read_svhn_mat,
    restricted_pickle_load,
)
from .locate import (
    ChecksumError,
    DataLocation,
    DataNotFoundError,
    cache_dir,
    data_dirs,
    download_file,
    find_dataset,
)
from .preprocess import (
    Standardizer,
    as_generator,
    one_hot,
    stratified_split,
    stratified_subset,
    to_float_nchw,
    to_uint8_nhwc,
)
from .transforms import (
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
    Transform,
)

__all__ = [
    # datasets
    "Dataset", "load_mnist", "load_fashion_mnist", "load_cifar10", "load_svhn", "load_hdf5",
    "load_image_folder", "bundled_path", "FASHION_MNIST_CLASSES", "MNIST_CLASSES",
    # formats
    "read_idx", "read_idx_images", "read_idx_labels", "read_cifar_python_batch", "read_cifar10_python",
    "read_cifar10_binary_batch", "read_cifar10_binary", "read_svhn_mat", "read_hdf5", "read_npz",
    "read_image_folder", "restricted_pickle_load", "RestrictedUnpickler", "CIFAR10_CLASSES",
    # locate
    "find_dataset", "DataNotFoundError", "ChecksumError", "DataLocation", "download_file",
    "cache_dir", "data_dirs",
    # preprocess
    "as_generator", "to_float_nchw", "to_uint8_nhwc", "Standardizer", "stratified_split",
    "stratified_subset", "one_hot",
    # transforms
    "Transform", "Compose", "RandomCrop", "RandomHorizontalFlip", "RandomShift", "RandomRotation",
    "RandomResizedCrop", "ColorJitter", "RandomGrayscale", "GaussianNoise", "GaussianBlur",
]
