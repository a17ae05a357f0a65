"""Keras's ``keras.preprocessing``: Keras 2's ``image`` module
(``ImageDataGenerator``, ...) and ``image_dataset_from_directory``."""

from ..image_dataset import image_dataset_from_directory
from . import image

__all__ = ["image", "image_dataset_from_directory"]
