"""What the MNIST convnet learned: "Deep Learning with Python" 5.4 (2nd ed. 9.4) on fastconv.

Trains the convnet of section 5.1 briefly, then writes into ``--output``:

- ``channel.png``: one channel of the first layer's activation of a test digit;
- ``feature_maps.png``: every channel of every convolution and pooling layer;
- ``pattern.png``: the input the first filter answers most (gradient ascent);
- ``filters_<layer>.png``: those patterns for every filter of the first two convolutions;
- ``gradcam.png``: where in the digit the model sees its predicted class (Grad-CAM).

Each picture starts with the book's loop written with fastconv (where the
book uses TensorFlow's GradientTape, fastconv's ``Model.gradients`` runs the
backward pass); ``fastconv.visualize`` packages the same loops and draws the
grids.  Run it as ``python -m fastconv.examples.visualize_convnet --data-dir
DIR --output DIR`` (needs matplotlib: ``pip install "fastconv[plots]"``).
"""

import argparse
import os
import sys

import numpy as np

import fastconv as keras
from fastconv import visualize
from fastconv.datasets import mnist
from fastconv.examples.mnist import _positive_int, notebook_model


def parse_args(argv=None):
    parser = argparse.ArgumentParser(prog="python -m fastconv.examples.visualize_convnet",
                                     description=__doc__.split("\n")[0])
    parser.add_argument("--data-dir", help="directory of the MNIST files (default: "
                        "load_data's own search, which honours FASTCONV_DATA)")
    parser.add_argument("--output", required=True, help="directory to write the pictures to")
    parser.add_argument("--train-size", type=_positive_int, default=10000,
                        help="train on the first N training images (default: 10,000)")
    parser.add_argument("--epochs", type=_positive_int, default=1)
    parser.add_argument("--steps", type=_positive_int, default=30,
                        help="gradient-ascent steps of each filter pattern (default: 30)")
    parser.add_argument("--seed", type=int, default=0)
    return parser.parse_args(argv)


def trained_model(data_dir, train_size, epochs):
    """The notebook's convnet trained on the first ``train_size`` digits, and the test digits."""
    (train_images, train_labels), (test_images, _) = mnist.load_data(data_dir)
    train_images = train_images[:train_size].reshape((-1, 28, 28, 1)).astype("float32") / 255
    model = notebook_model()
    model.fit(train_images, keras.utils.to_categorical(train_labels[:train_size], 10),
              epochs=epochs, batch_size=64, verbose=0)
    return model, test_images.reshape((-1, 28, 28, 1)).astype("float32") / 255


def first_layer_channel(model, img_tensor, channel, plt):
    """The book's first look: an activation model of the first layers, one channel shown."""
    layer_outputs = [layer.output for layer in model.layers[:5]]
    activation_model = keras.Model(inputs=model.input, outputs=layer_outputs)
    activations = activation_model.predict(img_tensor, verbose=0)
    first_layer_activation = activations[0]
    figure, ax = plt.subplots()
    ax.matshow(first_layer_activation[0, :, :, channel], cmap="viridis")
    return figure


def generate_pattern(model, layer_name, filter_index, steps=30, step_size=10.0):
    """The book's gradient ascent: the input that maximises one filter's mean activation."""
    feature_extractor = keras.Model(inputs=model.input,
                                    outputs=model.get_layer(layer_name).output)
    image = np.random.default_rng(0).uniform(0.4, 0.6, (1, 28, 28, 1)).astype("float32")
    activation = feature_extractor.predict(image, verbose=0)
    output_gradient = np.zeros_like(activation)  # d mean(activation[..., filter]) / d activation
    output_gradient[..., filter_index] = 1.0 / output_gradient[..., filter_index].size
    for _ in range(steps):
        grads = feature_extractor.gradients(image, output_gradient)
        grads /= np.sqrt(np.sum(grads ** 2)) + 1e-12  # l2-normalised, as the book
        image += step_size * grads
    return image[0]


def make_gradcam_heatmap(model, img_array, last_conv_layer_name):
    """keras.io's Grad-CAM: channel weights are the mean gradient of the top class score."""
    last_conv_layer = model.get_layer(last_conv_layer_name)
    grad_model = keras.Model(inputs=model.input, outputs=[last_conv_layer.output, model.output])
    last_conv_layer_output, preds = grad_model(img_array)
    pred_index = int(np.argmax(preds[0]))
    class_channel = np.zeros_like(preds)
    class_channel[0, pred_index] = 1.0
    (grads,) = grad_model.gradients(img_array, [None, class_channel],
                                    wrt=[last_conv_layer.output])
    pooled_grads = grads.mean(axis=(0, 1, 2))
    heatmap = np.maximum(last_conv_layer_output[0] @ pooled_grads, 0)
    return heatmap / max(heatmap.max(), 1e-12), pred_index


def main(argv=None):
    args = parse_args(argv)
    try:
        plt = visualize.require_matplotlib()
    except ImportError as error:
        print(error, file=sys.stderr)
        return 2
    os.makedirs(args.output, exist_ok=True)
    keras.utils.set_random_seed(args.seed)
    model, test_images = trained_model(args.data_dir, args.train_size, args.epochs)
    img_tensor = test_images[:1]
    conv_layers = [layer.name for layer in model.layers if isinstance(layer, keras.layers.Conv2D)]

    first_layer_channel(model, img_tensor, 4, plt).savefig(
        os.path.join(args.output, "channel.png"))
    visualize.plot_feature_maps(model, img_tensor, os.path.join(args.output, "feature_maps.png"))

    pattern = generate_pattern(model, conv_layers[0], 0, steps=args.steps)
    figure, ax = plt.subplots()
    ax.imshow(pattern[..., 0], cmap="gray")
    figure.savefig(os.path.join(args.output, "pattern.png"))
    for name in conv_layers[:2]:
        visualize.plot_filters(model, name, os.path.join(args.output, f"filters_{name}.png"),
                               steps=args.steps)

    heatmap, predicted = make_gradcam_heatmap(model, img_tensor, conv_layers[-1])
    print(f"predicted class of the test digit: {predicted}; Grad-CAM of {conv_layers[-1]} "
          f"peaks at {np.unravel_index(np.argmax(heatmap), heatmap.shape)}")
    visualize.plot_gradcam(model, img_tensor, os.path.join(args.output, "gradcam.png"),
                           layer=conv_layers[-1])
    print(f"wrote {', '.join(sorted(os.listdir(args.output)))} to {args.output}")
    plt.close("all")
    return 0


if __name__ == "__main__":
    sys.exit(main())
