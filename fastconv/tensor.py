"""Arrays as Keras 3 programs see them."""

import numpy as np


class Tensor(np.ndarray):
    """A NumPy array with the ``.numpy()`` of TensorFlow's and PyTorch's
    tensors, which Keras 3 programs call on layer outputs and dataset
    elements (``images[i].numpy().astype("uint8")`` in the image tutorials).
    Layers called on arrays, and datasets, give their arrays as this view."""

    def numpy(self):
        return self.view(np.ndarray)
