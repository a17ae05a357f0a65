"""Datasets in the Keras ``load_data`` format: ``mnist``, ``fashion_mnist``,
``cifar10`` and ``cifar100``.  Each loader looks for its files locally
(``load_data(path=...)``, ``$FASTCONV_DATA/<name>``, the cache
``~/.fastconv/datasets/<name>``, Keras's cache), else downloads and verifies
them; it raises ``DatasetNotFoundError`` (a FileNotFoundError) when offline."""

from . import cifar10, cifar100, fashion_mnist, mnist
from ._files import DatasetNotFoundError

__all__ = ["mnist", "fashion_mnist", "cifar10", "cifar100", "DatasetNotFoundError"]
