"""Public Keras convnet programs (tests/programs/*.py) run on fastconv with
only their imports changed.

Each program runs in a subprocess through tests/programs/_runner.py, which
substitutes small generated stand-ins for the datasets it cannot download,
and must exit 0 and print what Keras prints at its key points: the parameter
counts below are computed from each architecture (Keras counts
BatchNormalization's moving statistics in "Total params").  Programs that
needed a feature fastconv lacked were strict xfails naming the feature
until it landed; all of them run now.
"""

import functools
import os
import subprocess
import sys
import tempfile

import pytest

from conftest import subprocess_env

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
PROGRAMS = os.path.join(REPO, "tests", "programs")

# Training-length overrides the programs on 150x150 / 180x180 images read
# (their defaults are the sources' values), and the validation slice of the
# Fashion-MNIST program (5000 in the source, more than the stand-in holds).
SHORT_RUN = {"FASTCONV_PROGRAM_EPOCHS": "1", "FASTCONV_PROGRAM_STEPS": "1",
             "FASTCONV_PROGRAM_VALIDATION_SAMPLES": "16"}
# Stand-in sizes ("train,test") for programs that train for 150 epochs.
SAMPLES = {"keras_io_denoising_autoencoder_upsampling": "2,2",
           "keras_io_denoising_autoencoder": "2,2"}

CASES = [
    pytest.param("keras_io_mnist_convnet", [
        "x_train shape: (32, 28, 28, 1)", "32 train samples", "16 test samples",
        "Total params: 34,826", "Trainable params: 34,826", "Test loss:", "Test accuracy:"],
        id="keras_io_mnist_convnet"),
    pytest.param("tf_cnn_cifar10", [
        "Total params: 56,320", "Total params: 122,570", "epochs plotted: 10 10"],
        id="tf_cnn_cifar10"),
    pytest.param("dlwp_5_1_mnist_convnet", [
        "Total params: 55,744", "Total params: 93,322"],
        id="dlwp_5_1_mnist_convnet"),
    pytest.param("dlwp_5_2_cats_dogs_small", [
        "total training cat images: 4", "Total params: 3,453,121",
        "Found 8 images belonging to 2 classes.", "Found 4 images belonging to 2 classes.",
        "data batch shape: (8, 150, 150, 3)", "labels batch shape: (8,)",
        "epochs plotted: 1 1 1 1", "augmented image size: (150, 150)"],
        id="dlwp_5_2_cats_dogs_small"),
    pytest.param("dlwp_5_4_visualizing_activations", [
        "Total params: 3,453,121", "(1, 150, 150, 3)", "(1, 148, 148, 32)",
        "conv2d (296, 2368)", "max_pooling2d_3 (56, 112)"],
        id="dlwp_5_4_visualizing_activations"),
    pytest.param("dlwp2_8_1_functional_mnist", [
        "Total params: 104,202", "Test accuracy: 0.", "Total params: 712,202"],
        id="dlwp2_8_1_functional_mnist"),
    pytest.param("dlwp2_8_2_cats_dogs_from_scratch", [
        "Total params: 991,041", "Found 8 files belonging to 2 classes.",
        "Found 4 files belonging to 2 classes.", "data batch shape: (8, 180, 180, 3)",
        "labels batch shape: (8,)", "epochs plotted: 1 1 1 1", "Test accuracy: 0.",
        "augmented image 8 (180, 180, 3)"],
        id="dlwp2_8_2_cats_dogs_from_scratch"),
    pytest.param("dlwp2_9_residual_projection", [
        "projected residual: (None, 30, 30, 64)", "strided residual: (None, 15, 15, 64)"],
        id="dlwp2_9_residual_projection"),
    pytest.param("dlwp2_9_residual_blocks", ["Total params: 297,697"],
                 id="dlwp2_9_residual_blocks"),
    pytest.param("dlwp2_9_mini_xception", ["params: 721857", "epochs run: 1"],
                 id="dlwp2_9_mini_xception"),
    pytest.param("keras_io_image_classification_from_scratch", [
        "Found 16 files belonging to 2 classes.", "Using 13 files for training.",
        "Using 3 files for validation.", "params: 2731065", "% cat and"],
        id="keras_io_image_classification_from_scratch"),
    pytest.param("tf_image_classification_flowers", [
        "Found 20 files belonging to 5 classes.", "Using 16 files for training.",
        "Using 4 files for validation.", "['daisy', 'dandelion', 'roses', 'sunflowers', 'tulips']",
        "(180, 180, 3)",
        "(16, 180, 180, 3)", "(16,)", "Total params: 3,989,285",
        "epochs plotted: 1 1 1 1", "percent confidence."],
        id="tf_image_classification_flowers"),
    pytest.param("keras_examples_mnist_cnn", [
        "x_train shape: (32, 28, 28, 1)", "Test loss:", "Test accuracy:",
        "params: 1199882"],
        id="keras_examples_mnist_cnn"),
    pytest.param("keras_io_denoising_autoencoder_upsampling", [
        "Total params: 28,353", "displayed 10 pairs"],
        id="keras_io_denoising_autoencoder_upsampling"),
    pytest.param("keras_io_denoising_autoencoder", [
        "Total params: 28,353", "displayed 10 pairs"],
        id="keras_io_denoising_autoencoder"),
    pytest.param("tf_blog_fashion_mnist_cnn", [
        "x_train shape: (32, 28, 28) y_train shape: (32,)", "16 train set",
        "16 validation set", "Total params: 412,778",
        "Number of train data - 32",
        "saving model to model.weights.best.h5", "Test accuracy:"],
        id="tf_blog_fashion_mnist_cnn"),
]


@functools.lru_cache(maxsize=None)
def run_program(name):
    env = subprocess_env(**SHORT_RUN)
    if name in SAMPLES:
        env["FASTCONV_PROGRAM_SAMPLES"] = SAMPLES[name]
    return subprocess.run(
        [sys.executable, os.path.join(PROGRAMS, "_runner.py"),
         os.path.join(PROGRAMS, name + ".py")],
        capture_output=True, text=True, env=env, timeout=300,
        cwd=tempfile.mkdtemp(prefix="fastconv-program-"))  # for the files programs save


@pytest.mark.parametrize("name, expected", CASES)
def test_program_runs_and_prints(name, expected):
    result = run_program(name)
    assert result.returncode == 0, result.stderr[-3000:]
    for text in expected:
        assert text in result.stdout, f"{text!r} not printed:\n{result.stdout[-3000:]}"


def test_summary_prints_keras3_totals():
    # Keras 3 counts 4 bytes a float32 parameter: 34,826 * 4 / 1024 = 136.04 KB.
    result = run_program("keras_io_mnist_convnet")
    for line in [" Total params: 34,826 (136.04 KB)", " Trainable params: 34,826 (136.04 KB)",
                 " Non-trainable params: 0 (0.00 B)"]:
        assert line in result.stdout.splitlines()



def test_checkpoint_path_extension_checked_as_in_keras3():
    """The Fashion-MNIST notebook's 'model.weights.best.hdf5' is refused, as Keras 3 does
    (a full-model path must end in .keras or .h5; fastconv also takes .npz)."""
    import fastconv
    with pytest.raises(ValueError, match=r"\.keras"):
        fastconv.callbacks.ModelCheckpoint(filepath="model.weights.best.hdf5")
