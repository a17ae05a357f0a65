"""keras.io example "Convolutional Autoencoder For Image Denoising"
(Santiago L. Valdarrama), its first revision (March 2021): an UpSampling2D
decoder.  keras_io_denoising_autoencoder.py is the current revision.

Source: https://github.com/keras-team/keras-io/blob/28033e1c219da0430c695fdcbee81552b8c5f594/examples/vision/autoencoder.py
Changed: the imports only (``tensorflow.keras`` -> ``fastconv``).  ``display`` shows
ten random image pairs with matplotlib; here it prints what it would show.
"""

import numpy as np

from fastconv.datasets import mnist
from fastconv.layers import Conv2D, Input, MaxPooling2D, UpSampling2D
from fastconv.models import Model


def preprocess(dataset):
    """Scales the images to [0, 1] and gives them a channel axis."""
    dataset = dataset.astype("float32") / 255.0
    dataset = np.reshape(dataset, (len(dataset), 28, 28, 1))
    return dataset


def noise(dataset):
    """Adds Gaussian noise to every image, clipped back to [0, 1]."""
    noise_factor = 0.4
    noisy_dataset = dataset + noise_factor * np.random.normal(
        loc=0.0, scale=1.0, size=dataset.shape
    )
    return np.clip(noisy_dataset, 0.0, 1.0)


def display(array1, array2):
    """Picks ten random pairs of images (the example plots them)."""
    n = 10
    indices = np.random.randint(len(array1), size=n)
    images1 = array1[indices, :]
    images2 = array2[indices, :]
    for image1, image2 in zip(images1, images2):
        image1.reshape(28, 28), image2.reshape(28, 28)  # what the example plots
    print("displayed", len(images1), "pairs")


(train_dataset, _), (test_dataset, _) = mnist.load_data()

train_dataset = preprocess(train_dataset)
test_dataset = preprocess(test_dataset)

noisy_train_dataset = noise(train_dataset)
noisy_test_dataset = noise(test_dataset)

display(train_dataset, noisy_train_dataset)

input = Input(shape=(28, 28, 1))

# Encoder
x = Conv2D(32, (3, 3), activation="relu", padding="same")(input)
x = MaxPooling2D((2, 2), padding="same")(x)
x = Conv2D(32, (3, 3), activation="relu", padding="same")(x)
x = MaxPooling2D((2, 2), padding="same")(x)

# Decoder
x = Conv2D(32, (3, 3), activation="relu", padding="same")(x)
x = UpSampling2D((2, 2))(x)
x = Conv2D(32, (3, 3), activation="relu", padding="same")(x)
x = UpSampling2D((2, 2))(x)
x = Conv2D(1, (3, 3), activation="sigmoid", padding="same")(x)

# Autoencoder
autoencoder = Model(input, x)
autoencoder.compile(optimizer="adam", loss="binary_crossentropy")
autoencoder.summary()

autoencoder.fit(
    x=train_dataset,
    y=train_dataset,
    epochs=50,
    batch_size=128,
    shuffle=True,
    validation_data=(test_dataset, test_dataset),
)

predictions = autoencoder.predict(test_dataset)
display(test_dataset, predictions)

autoencoder.fit(
    x=noisy_train_dataset,
    y=train_dataset,
    epochs=100,
    batch_size=128,
    shuffle=True,
    validation_data=(noisy_test_dataset, test_dataset),
)

predictions = autoencoder.predict(noisy_test_dataset)
display(noisy_test_dataset, predictions)
