"""Datasets in the Keras ``load_data`` format."""

from . import mnist
