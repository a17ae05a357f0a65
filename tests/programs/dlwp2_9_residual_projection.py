"""Deep Learning with Python (2nd ed.), chapter 9.3.2, the first two
residual-connection listings: a residual projected by a 1x1 Conv2D when the
filter count changes, and by a strided 1x1 Conv2D after max-pooling.

Source: https://github.com/fchollet/deep-learning-with-python-notebooks/blob/master/second_edition/chapter09_part02_modern-convnet-architecture-patterns.ipynb
Changed: the imports only.  (The book builds these graphs without calling
anything else on them; the program prints their output shapes.)
"""

import fastconv as keras
from fastconv import layers

inputs = keras.Input(shape=(32, 32, 3))
x = layers.Conv2D(32, 3, activation="relu")(inputs)
residual = x
x = layers.Conv2D(64, 3, activation="relu", padding="same")(x)
residual = layers.Conv2D(64, 1)(residual)
x = layers.add([x, residual])
print("projected residual:", x.shape)

inputs = keras.Input(shape=(32, 32, 3))
x = layers.Conv2D(32, 3, activation="relu")(inputs)
residual = x
x = layers.Conv2D(64, 3, activation="relu", padding="same")(x)
x = layers.MaxPooling2D(2, padding="same")(x)
residual = layers.Conv2D(64, 1, strides=2)(residual)
x = layers.add([x, residual])
print("strided residual:", x.shape)
