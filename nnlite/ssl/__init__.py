"""Self-supervised learning: SimCLR, BYOL and Barlow Twins on nnlite layers.

* losses: ``nnlite.losses.NTXent``, ``BYOLLoss``, ``BarlowTwinsLoss`` (kernels in
  ``nnlite.functional.contrastive``); optimizer ``nnlite.optim.LARS``
* :mod:`.models`: ``resnet`` (18/34 layout, CIFAR stem), ``small_cnn``, ``mlp_head``, ``embed``,
  ``save_embeddings``
* :mod:`.augment`: ``Augment`` (two views, vectorised, explicit Generator), ``simclr_cifar``,
  ``simclr_imagenet``
* :mod:`.train`: ``SimCLR``, ``BYOL``, ``BarlowTwins``, ``pretrain`` (``checkpoint=`` / ``resume=``),
  ``ema_update``, ``cosine_tau``
* :mod:`.checkpoint`: the format of ``pretrain``'s checkpoints (nnlite's checkpoint files holding
  the method's modules, optimizer, schedule and the loop state) for an exact resume
* :mod:`.evaluate`: ``knn_predict``, ``knn_accuracy``, ``linear_probe``, ``retrieve``, ``kmeans``,
  ``cluster_purity``, ``silhouette``, ``tsne``, ``ood_class_split``, ``KNNMonitor``
"""
from . import checkpoint
from .augment import Augment, gaussian_blur, simclr_cifar, simclr_imagenet
from .evaluate import (KNNMonitor, cluster_purity, kmeans, knn_accuracy, knn_predict, linear_probe,
                       ood_class_split, retrieve, silhouette, tsne)
from .models import embed, mlp_head, recalibrate_batchnorm, resnet, save_embeddings, small_cnn
from .train import BYOL, BarlowTwins, SimCLR, cosine_tau, ema_update, pretrain

__all__ = [name for name in dir() if not name.startswith("_")]
