"""Deep Learning with Python (1st ed.), notebook 5.2 "Using convnets with
small datasets" (cats vs dogs, training from scratch).

Source: https://github.com/fchollet/deep-learning-with-python-notebooks/blob/master/first_edition/5.2-using-convnets-with-small-datasets.ipynb
Changed, besides the imports (``keras`` -> ``fastconv``):
- the data folder comes from $FASTCONV_PROGRAM_DATA (the notebook first
  copies 2000 Kaggle images into cats_and_dogs_small; that copying is only
  os/shutil and is left out);
- Keras 3 spellings of calls Keras 3 removed: ``RMSprop(learning_rate=1e-4)``
  for ``RMSprop(lr=1e-4)`` (Keras 3 raises "Argument(s) not recognized") and
  ``fit`` for ``fit_generator``;
- the training length (epochs, steps_per_epoch, validation_steps) is the
  notebook's unless $FASTCONV_PROGRAM_EPOCHS/$FASTCONV_PROGRAM_STEPS shorten
  it: 150x150 inputs and 100 steps of 20 images are minutes per epoch.
The matplotlib plots are left out; the values they plot are read.
"""

import os

from fastconv import layers, models, optimizers
from fastconv.preprocessing import image
from fastconv.preprocessing.image import ImageDataGenerator

base_dir = os.path.join(os.environ["FASTCONV_PROGRAM_DATA"], "cats_and_dogs_small")
train_dir = os.path.join(base_dir, 'train')
validation_dir = os.path.join(base_dir, 'validation')
train_cats_dir = os.path.join(train_dir, 'cats')
print('total training cat images:', len(os.listdir(train_cats_dir)))

epochs = int(os.environ.get("FASTCONV_PROGRAM_EPOCHS", 30))
augmented_epochs = int(os.environ.get("FASTCONV_PROGRAM_EPOCHS", 100))
steps_per_epoch = int(os.environ.get("FASTCONV_PROGRAM_STEPS", 100))
validation_steps = int(os.environ.get("FASTCONV_PROGRAM_STEPS", 50))

model = models.Sequential()
model.add(layers.Conv2D(32, (3, 3), activation='relu', input_shape=(150, 150, 3)))
model.add(layers.MaxPooling2D((2, 2)))
model.add(layers.Conv2D(64, (3, 3), activation='relu'))
model.add(layers.MaxPooling2D((2, 2)))
model.add(layers.Conv2D(128, (3, 3), activation='relu'))
model.add(layers.MaxPooling2D((2, 2)))
model.add(layers.Conv2D(128, (3, 3), activation='relu'))
model.add(layers.MaxPooling2D((2, 2)))
model.add(layers.Flatten())
model.add(layers.Dense(512, activation='relu'))
model.add(layers.Dense(1, activation='sigmoid'))
model.summary()

model.compile(loss='binary_crossentropy',
              optimizer=optimizers.RMSprop(learning_rate=1e-4),
              metrics=['acc'])

# All images will be rescaled by 1./255
train_datagen = ImageDataGenerator(rescale=1./255)
test_datagen = ImageDataGenerator(rescale=1./255)

train_generator = train_datagen.flow_from_directory(
    train_dir,
    target_size=(150, 150),
    batch_size=20,
    class_mode='binary')

validation_generator = test_datagen.flow_from_directory(
    validation_dir,
    target_size=(150, 150),
    batch_size=20,
    class_mode='binary')

for data_batch, labels_batch in train_generator:
    print('data batch shape:', data_batch.shape)
    print('labels batch shape:', labels_batch.shape)
    break

history = model.fit(
    train_generator,
    steps_per_epoch=steps_per_epoch,
    epochs=epochs,
    validation_data=validation_generator,
    validation_steps=validation_steps)

model.save('cats_and_dogs_small_1.h5')

acc = history.history['acc']
val_acc = history.history['val_acc']
loss = history.history['loss']
val_loss = history.history['val_loss']
print('epochs plotted:', len(acc), len(val_acc), len(loss), len(val_loss))

# Data augmentation
datagen = ImageDataGenerator(
    rotation_range=40,
    width_shift_range=0.2,
    height_shift_range=0.2,
    shear_range=0.2,
    zoom_range=0.2,
    horizontal_flip=True,
    fill_mode='nearest')

fnames = [os.path.join(train_cats_dir, fname) for fname in sorted(os.listdir(train_cats_dir))]
img_path = fnames[3]
img = image.load_img(img_path, target_size=(150, 150))
x = image.img_to_array(img)
x = x.reshape((1,) + x.shape)

i = 0
for batch in datagen.flow(x, batch_size=1):
    shown = image.array_to_img(batch[0])
    print('augmented image size:', shown.size)
    i += 1
    if i % 4 == 0:
        break

model = models.Sequential()
model.add(layers.Conv2D(32, (3, 3), activation='relu', input_shape=(150, 150, 3)))
model.add(layers.MaxPooling2D((2, 2)))
model.add(layers.Conv2D(64, (3, 3), activation='relu'))
model.add(layers.MaxPooling2D((2, 2)))
model.add(layers.Conv2D(128, (3, 3), activation='relu'))
model.add(layers.MaxPooling2D((2, 2)))
model.add(layers.Conv2D(128, (3, 3), activation='relu'))
model.add(layers.MaxPooling2D((2, 2)))
model.add(layers.Flatten())
model.add(layers.Dropout(0.5))
model.add(layers.Dense(512, activation='relu'))
model.add(layers.Dense(1, activation='sigmoid'))

model.compile(loss='binary_crossentropy',
              optimizer=optimizers.RMSprop(learning_rate=1e-4),
              metrics=['acc'])

train_datagen = ImageDataGenerator(
    rescale=1./255,
    rotation_range=40,
    width_shift_range=0.2,
    height_shift_range=0.2,
    shear_range=0.2,
    zoom_range=0.2,
    horizontal_flip=True,)

# Note that the validation data should not be augmented!
test_datagen = ImageDataGenerator(rescale=1./255)

train_generator = train_datagen.flow_from_directory(
    train_dir,
    target_size=(150, 150),
    batch_size=32,
    class_mode='binary')

validation_generator = test_datagen.flow_from_directory(
    validation_dir,
    target_size=(150, 150),
    batch_size=32,
    class_mode='binary')

history = model.fit(
    train_generator,
    steps_per_epoch=steps_per_epoch,
    epochs=augmented_epochs,
    validation_data=validation_generator,
    validation_steps=validation_steps)

model.save('cats_and_dogs_small_2.h5')
print('final val_acc entries:', len(history.history['val_acc']))
