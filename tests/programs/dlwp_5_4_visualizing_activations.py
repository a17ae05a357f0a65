"""Deep Learning with Python (1st ed.), notebook 5.4 "Visualizing what
convnets learn", part 1: intermediate activations.

Source: https://github.com/fchollet/deep-learning-with-python-notebooks/blob/master/first_edition/5.4-visualizing-what-convnets-learn.ipynb
The notebook loads cats_and_dogs_small_2.h5 saved by notebook 5.2; this
program first builds and saves that model (5.2's second model, untrained) so
that it stands alone.  Changed, besides the imports: the data folder comes
from $FASTCONV_PROGRAM_DATA, and the matplotlib figures are replaced by
printing what they would show (shapes, channel statistics, grid sizes).
"""

import os

import numpy as np

from fastconv import layers, models
from fastconv.models import load_model
from fastconv.preprocessing import image

# 5.2's second model, saved as that notebook saves it.
saved = models.Sequential()
saved.add(layers.Conv2D(32, (3, 3), activation='relu', input_shape=(150, 150, 3)))
saved.add(layers.MaxPooling2D((2, 2)))
saved.add(layers.Conv2D(64, (3, 3), activation='relu'))
saved.add(layers.MaxPooling2D((2, 2)))
saved.add(layers.Conv2D(128, (3, 3), activation='relu'))
saved.add(layers.MaxPooling2D((2, 2)))
saved.add(layers.Conv2D(128, (3, 3), activation='relu'))
saved.add(layers.MaxPooling2D((2, 2)))
saved.add(layers.Flatten())
saved.add(layers.Dropout(0.5))
saved.add(layers.Dense(512, activation='relu'))
saved.add(layers.Dense(1, activation='sigmoid'))
saved.compile(loss='binary_crossentropy', optimizer='rmsprop', metrics=['acc'])
saved.save('cats_and_dogs_small_2.h5')

# The notebook starts here.
model = load_model('cats_and_dogs_small_2.h5')
model.summary()  # As a reminder.

test_cats_dir = os.path.join(os.environ["FASTCONV_PROGRAM_DATA"], 'cats_and_dogs_small', 'test', 'cats')
img_path = os.path.join(test_cats_dir, sorted(os.listdir(test_cats_dir))[0])

# We preprocess the image into a 4D tensor
img = image.load_img(img_path, target_size=(150, 150))
img_tensor = image.img_to_array(img)
img_tensor = np.expand_dims(img_tensor, axis=0)
# Remember that the model was trained on inputs
# that were preprocessed in the following way:
img_tensor /= 255.

# Its shape is (1, 150, 150, 3)
print(img_tensor.shape)

# Extracts the outputs of the top 8 layers:
layer_outputs = [layer.output for layer in model.layers[:8]]
# Creates a model that will return these outputs, given the model input:
activation_model = models.Model(inputs=model.input, outputs=layer_outputs)

# This will return a list of 8 Numpy arrays:
# one array per layer activation
activations = activation_model.predict(img_tensor)

first_layer_activation = activations[0]
print(first_layer_activation.shape)
print('channel 3 mean:', first_layer_activation[0, :, :, 3].mean())
print('channel 30 mean:', first_layer_activation[0, :, :, 30].mean())

# These are the names of the layers, so can have them as part of our plot
layer_names = []
for layer in model.layers[:8]:
    layer_names.append(layer.name)

images_per_row = 16

# Now let's build the feature-map grids
for layer_name, layer_activation in zip(layer_names, activations):
    # This is the number of features in the feature map
    n_features = layer_activation.shape[-1]

    # The feature map has shape (1, size, size, n_features)
    size = layer_activation.shape[1]

    # We will tile the activation channels in this matrix
    n_cols = n_features // images_per_row
    display_grid = np.zeros((size * n_cols, images_per_row * size))

    # We'll tile each filter into this big horizontal grid
    for col in range(n_cols):
        for row in range(images_per_row):
            channel_image = layer_activation[0, :, :, col * images_per_row + row]
            # Post-process the feature to make it visually palatable
            channel_image -= channel_image.mean()
            channel_image /= channel_image.std() + 1e-5
            channel_image *= 64
            channel_image += 128
            channel_image = np.clip(channel_image, 0, 255).astype('uint8')
            display_grid[col * size: (col + 1) * size,
                         row * size: (row + 1) * size] = channel_image

    print(layer_name, display_grid.shape)
