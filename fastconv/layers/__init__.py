"""Keras layers on the fastconv kernels (``keras.layers``).

One module per family, as Keras: ``core`` (Dense, Activation), ``convolutional``,
``pooling``, ``global_pooling``, ``normalization``, ``advanced_activations``,
``reshaping``, ``regularization``, ``merging``, ``preprocessing`` (image
preprocessing and augmentation), and ``input_layer`` (Input);
``base`` holds the ``Layer`` class and the registry ``LAYERS`` that
``deserialize`` reads.
"""

from .advanced_activations import ELU, LeakyReLU, ReLU, Softmax
from .base import LAYERS, Layer, deserialize, serialize
from .convolutional import Conv2D, Conv2DTranspose, DepthwiseConv2D, SeparableConv2D
from .core import Activation, Dense
from .global_pooling import GlobalAveragePooling2D, GlobalMaxPooling2D
from .input_layer import Input, InputLayer
from .merging import (
    Add,
    Average,
    Concatenate,
    Maximum,
    Merge,
    Minimum,
    Multiply,
    Subtract,
    add,
    concatenate,
)
from .normalization import BatchNormalization
from .pooling import AveragePooling2D, MaxPooling2D
from .preprocessing import (
    CenterCrop,
    RandomBrightness,
    RandomContrast,
    RandomCrop,
    RandomFlip,
    RandomRotation,
    RandomTranslation,
    RandomZoom,
    Rescaling,
    Resizing,
)
from .regularization import Dropout, GaussianDropout, GaussianNoise, SpatialDropout2D
from .reshaping import Cropping2D, Flatten, Permute, Reshape, UpSampling2D, ZeroPadding2D

__all__ = ["ELU", "LeakyReLU", "ReLU", "Softmax", "LAYERS", "Layer", "deserialize", "serialize",
           "Conv2D", "Conv2DTranspose", "DepthwiseConv2D", "SeparableConv2D", "Activation",
           "Dense", "GlobalAveragePooling2D", "GlobalMaxPooling2D", "Input", "InputLayer", "Add",
           "Average", "Concatenate", "Maximum", "Merge", "Minimum", "Multiply", "Subtract", "add",
           "concatenate", "BatchNormalization", "AveragePooling2D", "MaxPooling2D", "CenterCrop",
           "RandomBrightness", "RandomContrast", "RandomCrop", "RandomFlip", "RandomRotation",
           "RandomTranslation", "RandomZoom", "Rescaling", "Resizing", "Dropout",
           "GaussianDropout", "GaussianNoise", "SpatialDropout2D", "Cropping2D", "Flatten",
           "Permute", "Reshape", "UpSampling2D", "ZeroPadding2D"]
