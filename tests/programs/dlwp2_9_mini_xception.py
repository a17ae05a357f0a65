"""Deep Learning with Python (2nd ed.), chapter 9.3.5 "Putting it together:
A mini Xception-like model" (augmentation, Rescaling, SeparableConv2D,
BatchNormalization, residual connections) on cats vs dogs.

Source: https://github.com/fchollet/deep-learning-with-python-notebooks/blob/master/second_edition/chapter09_part02_modern-convnet-architecture-patterns.ipynb
Changed, besides the imports: the data folder comes from
$FASTCONV_PROGRAM_DATA and the 100 epochs can be shortened by
$FASTCONV_PROGRAM_EPOCHS (180x180 inputs).  The book prints no summary
here; the program prints the parameter count the book's model has.
"""

import os
import pathlib

import fastconv as keras
from fastconv import layers
from fastconv.utils import image_dataset_from_directory

new_base_dir = pathlib.Path(os.environ["FASTCONV_PROGRAM_DATA"]) / "cats_vs_dogs_small"
epochs = int(os.environ.get("FASTCONV_PROGRAM_EPOCHS", 100))

train_dataset = image_dataset_from_directory(
    new_base_dir / "train",
    image_size=(180, 180),
    batch_size=32)
validation_dataset = image_dataset_from_directory(
    new_base_dir / "validation",
    image_size=(180, 180),
    batch_size=32)
test_dataset = image_dataset_from_directory(
    new_base_dir / "test",
    image_size=(180, 180),
    batch_size=32)

data_augmentation = keras.Sequential(
    [
        layers.RandomFlip("horizontal"),
        layers.RandomRotation(0.1),
        layers.RandomZoom(0.2),
    ]
)

inputs = keras.Input(shape=(180, 180, 3))
x = data_augmentation(inputs)

x = layers.Rescaling(1./255)(x)
x = layers.Conv2D(filters=32, kernel_size=5, use_bias=False)(x)

for size in [32, 64, 128, 256, 512]:
    residual = x

    x = layers.BatchNormalization()(x)
    x = layers.Activation("relu")(x)
    x = layers.SeparableConv2D(size, 3, padding="same", use_bias=False)(x)

    x = layers.BatchNormalization()(x)
    x = layers.Activation("relu")(x)
    x = layers.SeparableConv2D(size, 3, padding="same", use_bias=False)(x)

    x = layers.MaxPooling2D(3, strides=2, padding="same")(x)

    residual = layers.Conv2D(
        size, 1, strides=2, padding="same", use_bias=False)(residual)
    x = layers.add([x, residual])

x = layers.GlobalAveragePooling2D()(x)
x = layers.Dropout(0.5)(x)
outputs = layers.Dense(1, activation="sigmoid")(x)
model = keras.Model(inputs=inputs, outputs=outputs)
print("params:", model.count_params())

model.compile(loss="binary_crossentropy",
              optimizer="rmsprop",
              metrics=["accuracy"])
history = model.fit(
    train_dataset,
    epochs=epochs,
    validation_data=validation_dataset)
print("epochs run:", len(history.history["val_accuracy"]))
