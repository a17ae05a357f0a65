"""Runs one program of tests/programs with offline stand-ins for its data.

    python tests/programs/_runner.py tests/programs/<name>.py

The dataset loaders (``fastconv.datasets.<name>.load_data``) are replaced by
small generated arrays of the real shapes and dtypes (32 training and 16 test
samples, or the counts in FASTCONV_PROGRAM_SAMPLES="train,test"), and a
temporary folder of JPEGs in the layouts the image-folder programs expect is
made; its path is passed in the environment variable FASTCONV_PROGRAM_DATA.
The program then runs as ``__main__`` with that folder as the working
directory, so the files it saves land there too.
"""

import os
import runpy
import sys
import tempfile

import numpy as np

import fastconv.datasets

# Stand-in sizes; FASTCONV_PROGRAM_SAMPLES="train,test" sets others for
# programs that train for many epochs.
TRAIN_SAMPLES, TEST_SAMPLES = (
    int(n) for n in os.environ.get("FASTCONV_PROGRAM_SAMPLES", "32,16").split(","))

# The image folders, as (subfolder, class names, images per class): the
# first and second editions of Deep Learning with Python name theirs
# differently.
IMAGE_FOLDERS = [
    ("cats_and_dogs_small/train", ["cats", "dogs"], 4),
    ("cats_and_dogs_small/validation", ["cats", "dogs"], 2),
    ("cats_and_dogs_small/test", ["cats", "dogs"], 2),
    ("cats_vs_dogs_small/train", ["cat", "dog"], 4),
    ("cats_vs_dogs_small/validation", ["cat", "dog"], 2),
    ("cats_vs_dogs_small/test", ["cat", "dog"], 2),
    ("PetImages", ["Cat", "Dog"], 8),
    ("flower_photos", ["daisy", "dandelion", "roses", "sunflowers", "tulips"], 4),
]


def _labels(rng, samples, classes, shape):
    labels = np.arange(samples) % classes
    rng.shuffle(labels)
    return labels.astype(np.uint8).reshape((samples,) + shape)


def _image_loader(image_shape, classes, label_shape):
    """A load_data() returning random uint8 images of image_shape and labels
    covering all classes, in Keras's ((x_train, y_train), (x_test, y_test))."""
    def load_data(*args, **kwargs):
        rng = np.random.default_rng(0)
        splits = []
        for samples in (TRAIN_SAMPLES, TEST_SAMPLES):
            images = rng.integers(0, 256, (samples,) + image_shape, dtype=np.uint8)
            splits.append((images, _labels(rng, samples, classes, label_shape)))
        return tuple(splits)
    return load_data


def install_dataset_standins():
    fastconv.datasets.mnist.load_data = _image_loader((28, 28), 10, ())
    fastconv.datasets.fashion_mnist.load_data = _image_loader((28, 28), 10, ())
    fastconv.datasets.cifar10.load_data = _image_loader((32, 32, 3), 10, (1,))
    fastconv.datasets.cifar100.load_data = _image_loader((32, 32, 3), 100, (1,))


def make_image_folders(root):
    """Writes small JPEGs of assorted sizes into the IMAGE_FOLDERS layouts."""
    from PIL import Image
    rng = np.random.default_rng(1)
    for subfolder, class_names, count in IMAGE_FOLDERS:
        for class_index, class_name in enumerate(class_names):
            folder = os.path.join(root, subfolder, class_name)
            os.makedirs(folder)
            for i in range(count):
                height, width = rng.integers(40, 72, 2)
                pixels = rng.integers(0, 256, (height, width, 3), dtype=np.uint8)
                Image.fromarray(pixels).save(os.path.join(folder, f"{class_index}{i:03d}.jpg"))


def main(program):
    program = os.path.abspath(program)
    install_dataset_standins()
    with tempfile.TemporaryDirectory() as root:
        make_image_folders(root)
        os.environ["FASTCONV_PROGRAM_DATA"] = root
        os.chdir(root)
        sys.argv = [program]
        runpy.run_path(program, run_name="__main__")


if __name__ == "__main__":
    main(sys.argv[1])
