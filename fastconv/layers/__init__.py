"""Keras layers on the fastconv kernels (``keras.layers``).

One module per family, as Keras: ``core`` (Dense, Activation), ``convolutional``,
``pooling``, ``reshaping``, ``regularization``, ``merging``, and ``input_layer``
(Input); ``base`` holds the ``Layer`` class and the registry ``LAYERS`` that
``deserialize`` reads.
"""

from .base import LAYERS, Layer, deserialize, serialize
from .convolutional import Conv2D, DepthwiseConv2D, SeparableConv2D
from .core import Activation, Dense
from .input_layer import Input, InputLayer
from .pooling import AveragePooling2D, MaxPooling2D
from .regularization import Dropout
from .reshaping import Flatten

__all__ = ["LAYERS", "Layer", "deserialize", "serialize", "Input", "InputLayer", "Conv2D",
           "DepthwiseConv2D", "SeparableConv2D", "Dense", "Activation", "MaxPooling2D",
           "AveragePooling2D", "Dropout", "Flatten"]
