"""keras.io example "Image classification from scratch" (cats vs dogs,
Xception-like network with SeparableConv2D and residuals).

Source: https://keras.io/examples/vision/image_classification_from_scratch/
Changed, besides the imports (``keras`` -> ``fastconv``):
- the PetImages folder comes from $FASTCONV_PROGRAM_DATA (the example
  downloads and unzips it with curl/unzip) and the corrupted-JPEG filter,
  which uses TensorFlow's file API, is left out;
- the 25 epochs can be shortened by $FASTCONV_PROGRAM_EPOCHS (180x180);
- ``keras.utils.plot_model`` needs pydot/graphviz and matplotlib plotting is
  left out; the example's tf.data calls (``map``, ``prefetch``) are kept,
  since the example makes them on what image_dataset_from_directory returns;
  ``tf_data.AUTOTUNE`` is spelled as its value, -1.
"""

import os

import numpy as np

import fastconv as keras
from fastconv import layers

AUTOTUNE = -1  # tf.data.AUTOTUNE, a TensorFlow constant the example passes

data_dir = os.path.join(os.environ["FASTCONV_PROGRAM_DATA"], "PetImages")
epochs = int(os.environ.get("FASTCONV_PROGRAM_EPOCHS", 25))

image_size = (180, 180)
batch_size = 128

train_ds, val_ds = keras.utils.image_dataset_from_directory(
    data_dir,
    validation_split=0.2,
    subset="both",
    seed=1337,
    image_size=image_size,
    batch_size=batch_size,
)

for images, labels in train_ds.take(1):
    for i in range(9):
        print("label", int(labels[i]), np.array(images[i]).astype("uint8").shape)

data_augmentation_layers = [
    layers.RandomFlip("horizontal"),
    layers.RandomRotation(0.1),
]


def data_augmentation(images):
    for layer in data_augmentation_layers:
        images = layer(images)
    return images


for images, _ in train_ds.take(1):
    for i in range(9):
        augmented_images = data_augmentation(images)
        print("augmented", np.array(augmented_images[0]).astype("uint8").shape)

# Apply `data_augmentation` to the training images.
train_ds = train_ds.map(
    lambda img, label: (data_augmentation(img), label),
    num_parallel_calls=AUTOTUNE,
)
# Prefetching samples in GPU memory helps maximize GPU utilization.
train_ds = train_ds.prefetch(AUTOTUNE)
val_ds = val_ds.prefetch(AUTOTUNE)


def make_model(input_shape, num_classes):
    inputs = keras.Input(shape=input_shape)

    # Entry block
    x = layers.Rescaling(1.0 / 255)(inputs)
    x = layers.Conv2D(128, 3, strides=2, padding="same")(x)
    x = layers.BatchNormalization()(x)
    x = layers.Activation("relu")(x)

    previous_block_activation = x  # Set aside residual

    for size in [256, 512, 728]:
        x = layers.Activation("relu")(x)
        x = layers.SeparableConv2D(size, 3, padding="same")(x)
        x = layers.BatchNormalization()(x)

        x = layers.Activation("relu")(x)
        x = layers.SeparableConv2D(size, 3, padding="same")(x)
        x = layers.BatchNormalization()(x)

        x = layers.MaxPooling2D(3, strides=2, padding="same")(x)

        # Project residual
        residual = layers.Conv2D(size, 1, strides=2, padding="same")(
            previous_block_activation
        )
        x = layers.add([x, residual])  # Add back residual
        previous_block_activation = x  # Set aside next residual

    x = layers.SeparableConv2D(1024, 3, padding="same")(x)
    x = layers.BatchNormalization()(x)
    x = layers.Activation("relu")(x)

    x = layers.GlobalAveragePooling2D()(x)
    if num_classes == 2:
        units = 1
    else:
        units = num_classes

    x = layers.Dropout(0.25)(x)
    # We specify activation=None so as to return logits
    outputs = layers.Dense(units, activation=None)(x)
    return keras.Model(inputs, outputs)


model = make_model(input_shape=image_size + (3,), num_classes=2)
print("params:", model.count_params())

callbacks = [
    keras.callbacks.ModelCheckpoint("save_at_{epoch}.keras"),
]
model.compile(
    optimizer=keras.optimizers.Adam(3e-4),
    loss=keras.losses.BinaryCrossentropy(from_logits=True),
    metrics=[keras.metrics.BinaryAccuracy(name="acc")],
)
model.fit(
    train_ds,
    epochs=epochs,
    callbacks=callbacks,
    validation_data=val_ds,
)

img = keras.utils.load_img(os.path.join(data_dir, "Cat", "0000.jpg"), target_size=image_size)
img_array = keras.utils.img_to_array(img)
img_array = keras.ops.expand_dims(img_array, 0)  # Create batch axis

predictions = model.predict(img_array)
score = float(keras.ops.sigmoid(predictions[0][0]))
print(f"This image is {100 * (1 - score):.2f}% cat and {100 * score:.2f}% dog.")
