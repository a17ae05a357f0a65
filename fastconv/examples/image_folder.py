"""Train a convnet on a folder of your own images, as chapter 8 of "Deep
Learning with Python" (2nd ed.) does with cats and dogs.

The folder holds one subfolder per class (``DIR/cats/*.jpg``,
``DIR/dogs/*.jpg``, ...).  Without a folder of your own, ``--from-mnist
MNIST_DIR`` first writes one: PNG files of two MNIST digits (3s and 8s).
The script reads the folder with ``image_dataset_from_directory`` (80% to
train, 20% to validate), augments the training images with random flips,
rotations and zooms, trains a small convnet, keeps the best model in
``--output`` (Keras's ``.keras`` format when h5py is installed, else
``.npz``) and, with ``--plots DIR``, draws the training curves and a
Grad-CAM heatmap of one validation image.

    python -m fastconv.examples.image_folder --from-mnist ../shared/mnist \\
        --data-dir digits --plots plots
"""

import argparse
import sys
from pathlib import Path

import numpy as np

import fastconv as keras
from fastconv import layers

IMAGE_SIZE = (64, 64)


def write_mnist_folder(mnist_dir, folder, digits=(3, 8), per_class=600):
    """folder/<digit>/<i>.png: the first ``per_class`` training images of each digit."""
    from fastconv.datasets import mnist
    from fastconv.utils import save_img

    (images, labels), _ = mnist.load_data(mnist_dir)
    for digit in digits:
        target = Path(folder) / str(digit)
        target.mkdir(parents=True, exist_ok=True)
        for i, image in enumerate(images[labels == digit][:per_class]):
            save_img(target / f"{i}.png", np.repeat(image[..., None], 3, axis=-1),
                     scale=False)


def build_model(classes):
    """Chapter 8's convnet, smaller: augmentation, rescaling, conv blocks."""
    augmentation = keras.Sequential([layers.RandomFlip("horizontal"),
                                     layers.RandomRotation(0.1), layers.RandomZoom(0.2)])
    inputs = keras.Input(shape=IMAGE_SIZE + (3,))
    x = augmentation(inputs)
    x = layers.Rescaling(1.0 / 255)(x)
    for filters in (16, 32, 64):
        x = layers.Conv2D(filters, 3, activation="relu")(x)
        x = layers.MaxPooling2D(2)(x)
    x = layers.Flatten()(x)
    x = layers.Dropout(0.5)(x)
    outputs = layers.Dense(classes, activation="softmax")(x)
    model = keras.Model(inputs, outputs)
    model.compile(optimizer="rmsprop", loss="sparse_categorical_crossentropy",
                  metrics=["accuracy"])
    return model


def main(argv=None):
    parser = argparse.ArgumentParser(prog="python -m fastconv.examples.image_folder",
                                     description=__doc__.split("\n")[0])
    parser.add_argument("--data-dir", required=True, help="one subfolder of images per class")
    parser.add_argument("--from-mnist", metavar="MNIST_DIR",
                        help="first write a folder of MNIST 3s and 8s into --data-dir")
    parser.add_argument("--epochs", type=int, default=5)
    parser.add_argument("--output", default=None, help="where to keep the best model")
    parser.add_argument("--plots", metavar="DIR", help="write history.png and gradcam.png")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    keras.utils.set_random_seed(args.seed)
    if args.from_mnist:
        write_mnist_folder(args.from_mnist, args.data_dir)
    train, validation = keras.utils.image_dataset_from_directory(
        args.data_dir, validation_split=0.2, subset="both", seed=args.seed,
        image_size=IMAGE_SIZE, batch_size=32)
    model = build_model(len(train.class_names))
    model.summary()
    output = args.output or _default_output()
    history = model.fit(train.prefetch(2), validation_data=validation, epochs=args.epochs,
                        callbacks=[keras.callbacks.ModelCheckpoint(
                            output, save_best_only=True, monitor="val_loss")])
    best = keras.models.load_model(output)
    loss, accuracy = best.evaluate(validation, verbose=0)
    print(f"best model ({output}): validation accuracy {accuracy:.4f}")
    if args.plots:
        from fastconv import visualize

        Path(args.plots).mkdir(parents=True, exist_ok=True)
        visualize.plot_history(history, Path(args.plots) / "history.png")
        images, _ = next(iter(validation))
        visualize.plot_gradcam(best, images[0], Path(args.plots) / "gradcam.png")
        print(f"wrote {args.plots}/history.png and {args.plots}/gradcam.png")
    return 0


def _default_output():
    try:
        import h5py  # noqa: F401
    except ImportError:
        return "image_folder_convnet.npz"
    return "image_folder_convnet.keras"


if __name__ == "__main__":
    sys.exit(main())
