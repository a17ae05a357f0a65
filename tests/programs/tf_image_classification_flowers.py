"""TensorFlow tutorial "Image classification" (flowers: Rescaling,
image_dataset_from_directory, data augmentation, Dropout).

Source: https://www.tensorflow.org/tutorials/images/classification
Changed, besides the imports (``tf.keras`` -> ``fastconv``): the
flower_photos folder comes from $FASTCONV_PROGRAM_DATA (the tutorial
downloads it with get_file), the 10 and 15 epochs can be shortened by
$FASTCONV_PROGRAM_EPOCHS (180x180 inputs), the tutorial's tf.data calls
(cache, shuffle, prefetch, map) are kept with ``tf.data.AUTOTUNE`` spelled
as its value -1, ``tf.nn.softmax``/``tf.expand_dims`` become
``keras.ops.softmax``/``keras.ops.expand_dims`` (their Keras 3 spellings),
the TF Lite conversion at the end is left out and the plots are replaced by
printing what they show (the tutorial calls ``.numpy()`` on the images of
a batch, as TensorFlow tensors have it).
"""

import os
import pathlib

import numpy as np

import fastconv as keras
from fastconv import layers
from fastconv.models import Sequential

AUTOTUNE = -1  # tf.data.AUTOTUNE

data_dir = pathlib.Path(os.environ["FASTCONV_PROGRAM_DATA"]) / "flower_photos"
image_count = len(list(data_dir.glob('*/*.jpg')))
print(image_count)

batch_size = 32
img_height = 180
img_width = 180

train_ds = keras.utils.image_dataset_from_directory(
  data_dir,
  validation_split=0.2,
  subset="training",
  seed=123,
  image_size=(img_height, img_width),
  batch_size=batch_size)

val_ds = keras.utils.image_dataset_from_directory(
  data_dir,
  validation_split=0.2,
  subset="validation",
  seed=123,
  image_size=(img_height, img_width),
  batch_size=batch_size)

class_names = train_ds.class_names
print(class_names)

for images, labels in train_ds.take(1):
  for i in range(9):
    print(class_names[labels[i]], images[i].numpy().astype("uint8").shape)

for image_batch, labels_batch in train_ds:
  print(image_batch.shape)
  print(labels_batch.shape)
  break

train_ds = train_ds.cache().shuffle(1000).prefetch(buffer_size=AUTOTUNE)
val_ds = val_ds.cache().prefetch(buffer_size=AUTOTUNE)

normalization_layer = layers.Rescaling(1./255)
normalized_ds = train_ds.map(lambda x, y: (normalization_layer(x), y))
image_batch, labels_batch = next(iter(normalized_ds))
first_image = image_batch[0]
# Notice the pixel values are now in `[0,1]`.
print(np.min(first_image), np.max(first_image))

num_classes = len(class_names)

model = Sequential([
  layers.Rescaling(1./255, input_shape=(img_height, img_width, 3)),
  layers.Conv2D(16, 3, padding='same', activation='relu'),
  layers.MaxPooling2D(),
  layers.Conv2D(32, 3, padding='same', activation='relu'),
  layers.MaxPooling2D(),
  layers.Conv2D(64, 3, padding='same', activation='relu'),
  layers.MaxPooling2D(),
  layers.Flatten(),
  layers.Dense(128, activation='relu'),
  layers.Dense(num_classes)
])

model.compile(optimizer='adam',
              loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
              metrics=['accuracy'])
model.summary()

epochs = int(os.environ.get("FASTCONV_PROGRAM_EPOCHS", 10))
history = model.fit(
  train_ds,
  validation_data=val_ds,
  epochs=epochs
)

acc = history.history['accuracy']
val_acc = history.history['val_accuracy']
loss = history.history['loss']
val_loss = history.history['val_loss']
print("epochs plotted:", len(acc), len(val_acc), len(loss), len(val_loss))

data_augmentation = keras.Sequential(
  [
    layers.RandomFlip("horizontal",
                      input_shape=(img_height,
                                  img_width,
                                  3)),
    layers.RandomRotation(0.1),
    layers.RandomZoom(0.1),
  ]
)

for images, _ in train_ds.take(1):
  for i in range(9):
    augmented_images = data_augmentation(images)
    print(augmented_images[0].numpy().astype("uint8").shape)

model = Sequential([
  data_augmentation,
  layers.Rescaling(1./255),
  layers.Conv2D(16, 3, padding='same', activation='relu'),
  layers.MaxPooling2D(),
  layers.Conv2D(32, 3, padding='same', activation='relu'),
  layers.MaxPooling2D(),
  layers.Conv2D(64, 3, padding='same', activation='relu'),
  layers.MaxPooling2D(),
  layers.Dropout(0.2),
  layers.Flatten(),
  layers.Dense(128, activation='relu'),
  layers.Dense(num_classes, name="outputs")
])

model.compile(optimizer='adam',
              loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
              metrics=['accuracy'])
model.summary()

epochs = int(os.environ.get("FASTCONV_PROGRAM_EPOCHS", 15))
history = model.fit(
  train_ds,
  validation_data=val_ds,
  epochs=epochs
)

sunflower_path = str(next((data_dir / "sunflowers").glob("*.jpg")))
img = keras.utils.load_img(
    sunflower_path, target_size=(img_height, img_width)
)
img_array = keras.utils.img_to_array(img)
img_array = keras.ops.expand_dims(img_array, 0)  # Create a batch

predictions = model.predict(img_array)
score = keras.ops.softmax(predictions[0])

print(
    "This image most likely belongs to {} with a {:.2f} percent confidence."
    .format(class_names[np.argmax(score)], 100 * np.max(score))
)
