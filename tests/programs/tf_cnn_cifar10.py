"""TensorFlow tutorial "Convolutional Neural Network (CNN)" on CIFAR-10.

Source: https://www.tensorflow.org/tutorials/images/cnn
Changed: the imports only (``tf.keras`` -> ``fastconv``).  The tutorial's
matplotlib figures (sample images, accuracy curves) are not Keras calls and
are left out; the history values they plot are read as the tutorial does.
"""

import fastconv as keras
from fastconv import datasets, layers, models

(train_images, train_labels), (test_images, test_labels) = datasets.cifar10.load_data()

# Normalize pixel values to be between 0 and 1
train_images, test_images = train_images / 255.0, test_images / 255.0

class_names = ['airplane', 'automobile', 'bird', 'cat', 'deer',
               'dog', 'frog', 'horse', 'ship', 'truck']
print([class_names[train_labels[i][0]] for i in range(25)])

model = models.Sequential()
model.add(layers.Conv2D(32, (3, 3), activation='relu', input_shape=(32, 32, 3)))
model.add(layers.MaxPooling2D((2, 2)))
model.add(layers.Conv2D(64, (3, 3), activation='relu'))
model.add(layers.MaxPooling2D((2, 2)))
model.add(layers.Conv2D(64, (3, 3), activation='relu'))
model.summary()

model.add(layers.Flatten())
model.add(layers.Dense(64, activation='relu'))
model.add(layers.Dense(10))
model.summary()

model.compile(optimizer='adam',
              loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
              metrics=['accuracy'])

history = model.fit(train_images, train_labels, epochs=10,
                    validation_data=(test_images, test_labels))

accuracy_curve = history.history['accuracy']
val_accuracy_curve = history.history['val_accuracy']
print("epochs plotted:", len(accuracy_curve), len(val_accuracy_curve))

test_loss, test_acc = model.evaluate(test_images, test_labels, verbose=2)
print(test_acc)
