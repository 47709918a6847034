"""Model builders with named blocks, freezing, progressive unfreezing and feature extraction."""
# transfer learning (issue 17)
from .named import Blocks
from .vgg import VGG16, classifier_head, vgg, vgg_block
from .resnet import resnet
from .mobilenet import inverted_residual, mobilenet_v2
from .freeze import block_names, freeze, param_counts, summary, unfreeze
from .progressive import ProgressiveUnfreezing, make_optimizer
from .features import extract_features, load_features, save_features
from .autoencoder import Autoencoder, conv_autoencoder, dense_autoencoder  # autoencoders (issue 16)
