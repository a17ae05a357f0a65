"""TensorFlow blog / Colab "Fashion-MNIST with tf.Keras" (Margaret
Maynard-Reid): a two-conv-layer CNN with Dropout, a ModelCheckpoint that
keeps the best weights, load_weights and predict.

Source: https://github.com/margaretmz/deep-learning/blob/master/fashion_mnist_keras.ipynb
(published on https://medium.com/tensorflow/hello-deep-learning-fashion-mnist-with-keras-50fcff8cd74a)
Changed, besides the imports (``tf.keras`` -> ``fastconv``): the
checkpoint file is ``model.weights.best.h5`` for the notebook's
``model.weights.best.hdf5``, because Keras 3's ModelCheckpoint refuses a
full-model path that ends in neither ``.keras`` nor ``.h5``; the 5000 validation
samples it slices off the training set can be lowered by
$FASTCONV_PROGRAM_VALIDATION_SAMPLES (the stand-in data is small).  The matplotlib figure
of 15 predictions is replaced by printing them.
"""

import os

import numpy as np

import fastconv as tf_keras
from fastconv.callbacks import ModelCheckpoint

valid_count = int(os.environ.get("FASTCONV_PROGRAM_VALIDATION_SAMPLES", 5000))

(x_train, y_train), (x_test, y_test) = tf_keras.datasets.fashion_mnist.load_data()
print("x_train shape:", x_train.shape, "y_train shape:", y_train.shape)

print("x_train shape:", x_train.shape, "y_train shape:", y_train.shape)
print(x_train.shape[0], 'train set')
print(x_test.shape[0], 'test set')

fashion_mnist_labels = ["T-shirt/top",  # index 0
                        "Trouser",      # index 1
                        "Pullover",     # index 2
                        "Dress",        # index 3
                        "Coat",         # index 4
                        "Sandal",       # index 5
                        "Shirt",        # index 6
                        "Sneaker",      # index 7
                        "Bag",          # index 8
                        "Ankle boot"]   # index 9

img_index = 5
label_index = y_train[img_index]
print("y = " + str(label_index) + " " + (fashion_mnist_labels[label_index]))

x_train = x_train.astype('float32') / 255
x_test = x_test.astype('float32') / 255

print("Number of train data - " + str(len(x_train)))
print("Number of test data - " + str(len(x_test)))

# Further break training data into train / validation sets (put 5000 into
# the validation set and keep the rest for training)
(x_train, x_valid) = x_train[valid_count:], x_train[:valid_count]
(y_train, y_valid) = y_train[valid_count:], y_train[:valid_count]

w, h = 28, 28
x_train = x_train.reshape(x_train.shape[0], w, h, 1)
x_valid = x_valid.reshape(x_valid.shape[0], w, h, 1)
x_test = x_test.reshape(x_test.shape[0], w, h, 1)

y_train = tf_keras.utils.to_categorical(y_train, 10)
y_valid = tf_keras.utils.to_categorical(y_valid, 10)
y_test = tf_keras.utils.to_categorical(y_test, 10)

print("x_train shape:", x_train.shape, "y_train shape:", y_train.shape)
print(x_train.shape[0], 'train set')
print(x_valid.shape[0], 'validation set')
print(x_test.shape[0], 'test set')

model = tf_keras.Sequential()
model.add(tf_keras.layers.Conv2D(filters=64, kernel_size=2, padding='same', activation='relu',
                                 input_shape=(28, 28, 1)))
model.add(tf_keras.layers.MaxPooling2D(pool_size=2))
model.add(tf_keras.layers.Dropout(0.3))
model.add(tf_keras.layers.Conv2D(filters=32, kernel_size=2, padding='same', activation='relu'))
model.add(tf_keras.layers.MaxPooling2D(pool_size=2))
model.add(tf_keras.layers.Dropout(0.3))
model.add(tf_keras.layers.Flatten())
model.add(tf_keras.layers.Dense(256, activation='relu'))
model.add(tf_keras.layers.Dropout(0.5))
model.add(tf_keras.layers.Dense(10, activation='softmax'))
model.summary()

model.compile(loss='categorical_crossentropy',
              optimizer='adam',
              metrics=['accuracy'])

checkpointer = ModelCheckpoint(filepath='model.weights.best.h5', verbose=1,
                               save_best_only=True)
model.fit(x_train,
          y_train,
          batch_size=64,
          epochs=10,
          validation_data=(x_valid, y_valid),
          callbacks=[checkpointer])

# Load the weights with the best validation accuracy
model.load_weights('model.weights.best.h5')

score = model.evaluate(x_test, y_test, verbose=0)
print('\n', 'Test accuracy:', score[1])

y_hat = model.predict(x_test)
for i, index in enumerate(np.random.choice(x_test.shape[0], size=15, replace=False)):
    predict_index = np.argmax(y_hat[index])
    true_index = np.argmax(y_test[index])
    print("{} ({})".format(fashion_mnist_labels[predict_index],
                           fashion_mnist_labels[true_index]))
