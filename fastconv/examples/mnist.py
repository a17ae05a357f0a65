"""The MNIST convnet of "Deep Learning with Python" (section 5.1), on fastconv.

Only the imports differ from the Keras notebook.  Run it as
``fastconv-mnist`` or ``python -m fastconv.examples.mnist``; ``--help``
lists the options.  Exit status 1 when ``--min-accuracy`` is not reached,
2 with a one-line ``fastconv-mnist: error: ...`` when an option is invalid,
MNIST cannot be found or downloaded, or ``--plots`` cannot plot (matplotlib
missing); these are checked before training.
"""

import argparse
import os
import sys

import fastconv
from fastconv import layers, models, visualize
from fastconv.datasets import mnist
from fastconv.utils import set_random_seed, to_categorical


def _int_at_least(minimum):
    """An argparse type: the argument as an int >= ``minimum``."""
    def parse(text):
        value = int(text)  # argparse reports a ValueError as "invalid int value"
        if value < minimum:
            raise argparse.ArgumentTypeError(f"must be an integer >= {minimum}, got {text}")
        return value

    parse.__name__ = "int"
    return parse


_positive_int = _int_at_least(1)


def notebook_model(show_summaries=False):
    """The notebook's convnet, built as the notebook builds it (printing its
    two summaries when asked) and compiled as it compiles it."""
    model = models.Sequential()
    model.add(layers.Conv2D(32, (3, 3), activation='relu', input_shape=(28, 28, 1)))
    model.add(layers.MaxPooling2D((2, 2)))
    model.add(layers.Conv2D(64, (3, 3), activation='relu'))
    model.add(layers.MaxPooling2D((2, 2)))
    model.add(layers.Conv2D(64, (3, 3), activation='relu'))
    if show_summaries:
        model.summary()
    model.add(layers.Flatten())
    model.add(layers.Dense(64, activation='relu'))
    model.add(layers.Dense(10, activation='softmax'))
    if show_summaries:
        model.summary()
    model.compile(optimizer='rmsprop', loss='categorical_crossentropy', metrics=['accuracy'])
    return model


def parse_args(argv=None):
    parser = argparse.ArgumentParser(prog="fastconv-mnist", description=__doc__.split("\n")[0])
    parser.add_argument("--epochs", type=_positive_int, default=5)
    parser.add_argument("--batch-size", type=_positive_int, default=64)
    parser.add_argument("--backend", choices=["cython", "numpy"], default="cython",
                        help="compiled kernels or the NumPy reference")
    parser.add_argument("--threads", type=_positive_int, help="threads of the compiled kernels")
    parser.add_argument("--data-dir", help="directory of the MNIST files (default: "
                        "load_data's own search, which honours FASTCONV_DATA)")
    parser.add_argument("--train-size", type=_positive_int,
                        help="train on the first N training images (default: all 60,000)")
    parser.add_argument("--output", help="save the trained model to this .npz file")
    parser.add_argument("--plots", metavar="DIR",
                        help="write the training curves (history.png) and the feature maps of "
                             "the first test digit (feature_maps.png) into DIR (needs "
                             "matplotlib)")
    parser.add_argument("--seed", type=_int_at_least(0),
                        help="seed of initialisation and shuffling (an integer >= 0)")
    parser.add_argument("--verbose", type=int, choices=[0, 1, 2],
                        help="0 silent, 1 progress bar, 2 one line per epoch "
                             "(default: 1 on a terminal, else 2)")
    parser.add_argument("--min-accuracy", type=float,
                        help="exit with status 1 if the test accuracy is below this")
    return parser.parse_args(argv)


def main(argv=None):
    args = parse_args(argv)
    fastconv.set_backend(args.backend)
    if args.threads is not None:
        fastconv.set_num_threads(args.threads)
    if args.seed is not None:
        set_random_seed(args.seed)
    verbose = args.verbose if args.verbose is not None else (1 if sys.stdout.isatty() else 2)
    if args.plots:
        try:
            visualize.require_matplotlib()  # before training, not after
            os.makedirs(args.plots, exist_ok=True)
        except (ImportError, OSError) as error:
            return _error(f"--plots: {error}")
    try:
        (train_images, train_labels), (test_images, test_labels) = mnist.load_data(args.data_dir)
    except (OSError, ValueError) as error:  # not found, not downloadable, or damaged
        return _error(error)

    model = notebook_model(show_summaries=True)
    train_images, train_labels = train_images[:args.train_size], train_labels[:args.train_size]
    train_images = train_images.reshape((len(train_images), 28, 28, 1)).astype('float32') / 255
    test_images = test_images.reshape((len(test_images), 28, 28, 1)).astype('float32') / 255
    train_labels = to_categorical(train_labels, 10)
    test_labels = to_categorical(test_labels, 10)

    history = model.fit(train_images, train_labels, epochs=args.epochs,
                        batch_size=args.batch_size, verbose=verbose)
    test_loss, test_acc = model.evaluate(test_images, test_labels, verbose=verbose)
    print(f"test_loss: {test_loss:.4f} - test_acc: {test_acc:.4f}")

    if args.output:
        model.save(args.output)
        print(f"saved the model to {args.output}")
    if args.plots:
        visualize.plot_history(history, os.path.join(args.plots, "history.png"))
        visualize.plot_feature_maps(model, test_images[0],
                                    os.path.join(args.plots, "feature_maps.png"))
        print(f"wrote history.png and feature_maps.png to {args.plots}")
    if args.min_accuracy is not None and test_acc < args.min_accuracy:
        print(f"test accuracy {test_acc:.4f} is below --min-accuracy {args.min_accuracy}",
              file=sys.stderr)
        return 1
    return 0


def _error(message):
    """Prints ``message`` as one argparse-style error line; returns exit status 2."""
    print(f"fastconv-mnist: error: {' '.join(str(message).split())}", file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main())
