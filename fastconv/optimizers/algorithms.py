"""Keras 3's optimizers: signatures, defaults and update equations.

In the equations g is the gradient (after clipping), lr the learning rate of
the step, t the step number counted from 1 (``iterations + 1``).  Every
update writes only into the weight, its slots and its scratch arrays.

The NumPy ``update`` methods are the reference.  SGD, RMSprop, Adam and
AdamW (amsgrad included) also have a compiled step (``_compiled_step``,
``fastconv._kernels._optim.step``) that evaluates the same equations in the
same order over all weights in one call; ``Optimizer.apply`` uses it when it
can.  Adagrad, Adadelta, Adamax and Nadam run the NumPy update.
"""

import math

import numpy as np

from .._checks import check_choice, check_number
from .._kernels import _optim
from .base import OPTIMIZERS, Optimizer


def _fraction(value, name):
    return check_number(value, name, 0, 1)


def _epsilon(value):
    return check_number(value, "epsilon", 0)


def _flag(value, name):
    return check_choice(value, name, (False, True))


@OPTIMIZERS.register("sgd")
class SGD(Optimizer):
    """Gradient descent, with (Nesterov) momentum when ``momentum`` > 0:
    m = momentum * m - lr * g;  w += m  (nesterov: w += momentum * m - lr * g)."""

    def __init__(self, learning_rate=0.01, momentum=0.0, nesterov=False, weight_decay=None,
                 clipnorm=None, clipvalue=None, global_clipnorm=None, name=None, **kwargs):
        super().__init__(learning_rate, weight_decay=weight_decay, clipnorm=clipnorm,
                         clipvalue=clipvalue, global_clipnorm=global_clipnorm, name=name,
                         **kwargs)
        self.momentum = _fraction(momentum, "momentum")
        self.nesterov = _flag(nesterov, "nesterov")
        self.slot_names = ("momentum",) if self.momentum else ()

    def update(self, weight, grad, learning_rate, scratch, momentum=None):
        np.multiply(grad, learning_rate, out=scratch)
        if momentum is None:
            weight -= scratch
            return
        momentum *= self.momentum
        momentum -= scratch
        if self.nesterov:
            weight -= scratch
            np.multiply(momentum, self.momentum, out=scratch)
            weight += scratch
        else:
            weight += momentum

    def _compiled_step(self, learning_rate):
        return (("momentum" if self.momentum else None,),
                {"algorithm": _optim.SGD_STEP, "rate": learning_rate, "first": self.momentum,
                 "nesterov": self.nesterov})

    def get_config(self):
        return {**super().get_config(), "momentum": self.momentum, "nesterov": self.nesterov}


@OPTIMIZERS.register("rmsprop")
class RMSprop(Optimizer):
    """v = rho * v + (1 - rho) * g**2;  w -= lr * g / sqrt(v + epsilon).

    centered: v - a**2 replaces v, where a = rho * a + (1 - rho) * g;
    momentum > 0: m = momentum * m + increment;  w -= m.
    """

    def __init__(self, learning_rate=0.001, rho=0.9, momentum=0.0, epsilon=1e-07,
                 centered=False, weight_decay=None, clipnorm=None, clipvalue=None,
                 global_clipnorm=None, name=None, **kwargs):
        super().__init__(learning_rate, weight_decay=weight_decay, clipnorm=clipnorm,
                         clipvalue=clipvalue, global_clipnorm=global_clipnorm, name=name,
                         **kwargs)
        self.rho = _fraction(rho, "rho")
        self.momentum = _fraction(momentum, "momentum")
        self.epsilon = _epsilon(epsilon)
        self.centered = _flag(centered, "centered")
        self.slot_names = (("velocity",) + (("momentum",) if self.momentum else ())
                           + (("average_gradient",) if self.centered else ()))

    def update(self, weight, grad, learning_rate, scratch, velocity, momentum=None,
               average_gradient=None):
        velocity *= self.rho
        np.square(grad, out=scratch)
        scratch *= 1 - self.rho
        velocity += scratch
        if average_gradient is None:
            np.add(velocity, self.epsilon, out=scratch)
        else:
            average_gradient *= self.rho
            np.multiply(grad, 1 - self.rho, out=scratch)
            average_gradient += scratch
            np.square(average_gradient, out=scratch)
            np.subtract(velocity, scratch, out=scratch)
            scratch += self.epsilon
        np.sqrt(scratch, out=scratch)
        np.divide(grad, scratch, out=scratch)
        scratch *= learning_rate
        if momentum is None:
            weight -= scratch
        else:
            momentum *= self.momentum
            momentum += scratch
            weight -= momentum

    def _compiled_step(self, learning_rate):
        return (("velocity", "momentum" if self.momentum else None,
                 "average_gradient" if self.centered else None),
                {"algorithm": _optim.RMSPROP_STEP, "rate": learning_rate, "first": self.rho,
                 "second": self.momentum, "epsilon": self.epsilon})

    def get_config(self):
        return {**super().get_config(), "rho": self.rho, "momentum": self.momentum,
                "epsilon": self.epsilon, "centered": self.centered}


@OPTIMIZERS.register("adam")
class Adam(Optimizer):
    """m += (1 - beta_1) * (g - m);  v += (1 - beta_2) * (g**2 - v);
    w -= lr * sqrt(1 - beta_2**t) / (1 - beta_1**t) * m / (sqrt(v) + epsilon).
    amsgrad: v_hat = max(v_hat, v) replaces v in the last line."""

    def __init__(self, learning_rate=0.001, beta_1=0.9, beta_2=0.999, epsilon=1e-07,
                 amsgrad=False, weight_decay=None, clipnorm=None, clipvalue=None,
                 global_clipnorm=None, name=None, **kwargs):
        super().__init__(learning_rate, weight_decay=weight_decay, clipnorm=clipnorm,
                         clipvalue=clipvalue, global_clipnorm=global_clipnorm, name=name,
                         **kwargs)
        self.beta_1 = _fraction(beta_1, "beta_1")
        self.beta_2 = _fraction(beta_2, "beta_2")
        self.epsilon = _epsilon(epsilon)
        self.amsgrad = _flag(amsgrad, "amsgrad")
        self.slot_names = ("momentum", "velocity") + (("velocity_hat",) if self.amsgrad else ())

    def update(self, weight, grad, learning_rate, scratch, momentum, velocity,
               velocity_hat=None):
        alpha = self._alpha(learning_rate)
        _moving_average(momentum, grad, self.beta_1, scratch)
        np.square(grad, out=scratch)
        _moving_average(velocity, scratch, self.beta_2, scratch)
        if velocity_hat is not None:
            np.maximum(velocity_hat, velocity, out=velocity_hat)
            velocity = velocity_hat
        np.sqrt(velocity, out=scratch)
        scratch += self.epsilon
        np.divide(momentum, scratch, out=scratch)
        scratch *= alpha
        weight -= scratch

    def _alpha(self, learning_rate):
        """The step's rate with the bias corrections of both moments."""
        t = self.iterations + 1
        return learning_rate * math.sqrt(1 - self.beta_2 ** t) / (1 - self.beta_1 ** t)

    def _compiled_step(self, learning_rate):
        return (("momentum", "velocity", "velocity_hat" if self.amsgrad else None),
                {"algorithm": _optim.ADAM_STEP, "rate": self._alpha(learning_rate),
                 "first": self.beta_1, "second": self.beta_2, "epsilon": self.epsilon})

    def get_config(self):
        return {**super().get_config(), "beta_1": self.beta_1, "beta_2": self.beta_2,
                "epsilon": self.epsilon, "amsgrad": self.amsgrad}


@OPTIMIZERS.register("adamw")
class AdamW(Adam):
    """Adam with decoupled weight decay (``weight_decay``, 0.004 by default,
    applied as by every optimizer: w -= w * weight_decay * lr before the step)."""

    def __init__(self, learning_rate=0.001, weight_decay=0.004, beta_1=0.9, beta_2=0.999,
                 epsilon=1e-07, amsgrad=False, clipnorm=None, clipvalue=None,
                 global_clipnorm=None, name=None, **kwargs):
        if weight_decay is None:
            raise ValueError("Argument `weight_decay` must be a float. Received: "
                             "weight_decay=None")
        super().__init__(learning_rate, beta_1=beta_1, beta_2=beta_2, epsilon=epsilon,
                         amsgrad=amsgrad, weight_decay=weight_decay, clipnorm=clipnorm,
                         clipvalue=clipvalue, global_clipnorm=global_clipnorm, name=name,
                         **kwargs)


@OPTIMIZERS.register("adagrad")
class Adagrad(Optimizer):
    """a += g**2 (a starts at initial_accumulator_value);
    w -= lr * g / sqrt(a + epsilon)."""

    slot_names = ("accumulator",)

    def __init__(self, learning_rate=0.001, initial_accumulator_value=0.1, epsilon=1e-07,
                 weight_decay=None, clipnorm=None, clipvalue=None, global_clipnorm=None,
                 name=None, **kwargs):
        super().__init__(learning_rate, weight_decay=weight_decay, clipnorm=clipnorm,
                         clipvalue=clipvalue, global_clipnorm=global_clipnorm, name=name,
                         **kwargs)
        self.initial_accumulator_value = check_number(
            initial_accumulator_value, "initial_accumulator_value", 0)
        self.epsilon = _epsilon(epsilon)

    def build(self, weights):
        super().build(weights)
        for slots in self.slots:
            slots["accumulator"].fill(self.initial_accumulator_value)

    def update(self, weight, grad, learning_rate, scratch, accumulator):
        np.square(grad, out=scratch)
        accumulator += scratch
        np.add(accumulator, self.epsilon, out=scratch)
        np.sqrt(scratch, out=scratch)
        np.divide(grad, scratch, out=scratch)
        scratch *= learning_rate
        weight -= scratch

    def get_config(self):
        return {**super().get_config(),
                "initial_accumulator_value": self.initial_accumulator_value,
                "epsilon": self.epsilon}


@OPTIMIZERS.register("adadelta")
class Adadelta(Optimizer):
    """a = rho * a + (1 - rho) * g**2;
    delta = -sqrt(d + epsilon) / sqrt(a + epsilon) * g;
    d = rho * d + (1 - rho) * delta**2;  w += lr * delta
    (a: 'accumulated_grad', d: 'accumulated_delta_var')."""

    slot_names = ("accumulated_grad", "accumulated_delta_var")
    scratch_names = ("scratch", "step")

    def __init__(self, learning_rate=0.001, rho=0.95, epsilon=1e-07, weight_decay=None,
                 clipnorm=None, clipvalue=None, global_clipnorm=None, name=None, **kwargs):
        super().__init__(learning_rate, weight_decay=weight_decay, clipnorm=clipnorm,
                         clipvalue=clipvalue, global_clipnorm=global_clipnorm, name=name,
                         **kwargs)
        self.rho = _fraction(rho, "rho")
        self.epsilon = _epsilon(epsilon)

    def update(self, weight, grad, learning_rate, scratch, step, accumulated_grad,
               accumulated_delta_var):
        np.square(grad, out=scratch)
        _moving_average(accumulated_grad, scratch, self.rho, scratch)
        np.add(accumulated_delta_var, self.epsilon, out=scratch)
        np.sqrt(scratch, out=scratch)
        scratch *= grad
        np.add(accumulated_grad, self.epsilon, out=step)
        np.sqrt(step, out=step)
        np.divide(scratch, step, out=step)  # step = -delta
        np.square(step, out=scratch)
        _moving_average(accumulated_delta_var, scratch, self.rho, scratch)
        step *= learning_rate
        weight -= step

    def get_config(self):
        return {**super().get_config(), "rho": self.rho, "epsilon": self.epsilon}


@OPTIMIZERS.register("adamax")
class Adamax(Optimizer):
    """m += (1 - beta_1) * (g - m);  u = max(beta_2 * u, |g|);
    w -= lr * m / ((1 - beta_1**t) * (u + epsilon))  (u: slot 'norm')."""

    slot_names = ("momentum", "norm")

    def __init__(self, learning_rate=0.001, beta_1=0.9, beta_2=0.999, epsilon=1e-07,
                 weight_decay=None, clipnorm=None, clipvalue=None, global_clipnorm=None,
                 name=None, **kwargs):
        super().__init__(learning_rate, weight_decay=weight_decay, clipnorm=clipnorm,
                         clipvalue=clipvalue, global_clipnorm=global_clipnorm, name=name,
                         **kwargs)
        self.beta_1 = _fraction(beta_1, "beta_1")
        self.beta_2 = _fraction(beta_2, "beta_2")
        self.epsilon = _epsilon(epsilon)

    def update(self, weight, grad, learning_rate, scratch, momentum, norm):
        _moving_average(momentum, grad, self.beta_1, scratch)
        norm *= self.beta_2
        np.abs(grad, out=scratch)
        np.maximum(norm, scratch, out=norm)
        np.add(norm, self.epsilon, out=scratch)
        scratch *= 1 - self.beta_1 ** (self.iterations + 1)
        np.divide(momentum, scratch, out=scratch)
        scratch *= learning_rate
        weight -= scratch

    def get_config(self):
        return {**super().get_config(), "beta_1": self.beta_1, "beta_2": self.beta_2,
                "epsilon": self.epsilon}


@OPTIMIZERS.register("nadam")
class Nadam(Optimizer):
    """Adam with Nesterov momentum, as Keras 3: with u_s = beta_1 * (1 - 0.5 *
    0.96**s) and P_t = u_1 * ... * u_t,
    m += (1 - beta_1) * (g - m);  v += (1 - beta_2) * (g**2 - v);
    m_hat = u_{t+1} * m / (1 - P_t * u_{t+1}) + (1 - u_t) * g / (1 - P_t);
    w -= lr * m_hat / (sqrt(v / (1 - beta_2**t)) + epsilon)."""

    slot_names = ("momentum", "velocity")
    scratch_names = ("scratch", "m_hat")

    def __init__(self, learning_rate=0.001, beta_1=0.9, beta_2=0.999, epsilon=1e-07,
                 weight_decay=None, clipnorm=None, clipvalue=None, global_clipnorm=None,
                 name=None, **kwargs):
        super().__init__(learning_rate, weight_decay=weight_decay, clipnorm=clipnorm,
                         clipvalue=clipvalue, global_clipnorm=global_clipnorm, name=name,
                         **kwargs)
        self.beta_1 = _fraction(beta_1, "beta_1")
        self.beta_2 = _fraction(beta_2, "beta_2")
        self.epsilon = _epsilon(epsilon)
        self._u_product = (0, 1.0)  # (t, P_t), carried from step to step

    def _u(self, step):
        return self.beta_1 * (1 - 0.5 * 0.96 ** step)

    def _u_product_at(self, t):
        """P_t, from the last one computed (from scratch after a reload)."""
        done, product = self._u_product
        if done > t:
            done, product = 0, 1.0
        for step in range(done + 1, t + 1):
            product *= self._u(step)
        self._u_product = (t, product)
        return product

    def update(self, weight, grad, learning_rate, scratch, m_hat, momentum, velocity):
        t = self.iterations + 1
        u_t, u_next = self._u(t), self._u(t + 1)
        product = self._u_product_at(t)
        _moving_average(momentum, grad, self.beta_1, scratch)
        np.square(grad, out=scratch)
        _moving_average(velocity, scratch, self.beta_2, scratch)
        np.multiply(momentum, u_next / (1 - product * u_next), out=m_hat)
        np.multiply(grad, (1 - u_t) / (1 - product), out=scratch)
        m_hat += scratch
        np.divide(velocity, 1 - self.beta_2 ** t, out=scratch)
        np.sqrt(scratch, out=scratch)
        scratch += self.epsilon
        np.divide(m_hat, scratch, out=scratch)
        scratch *= learning_rate
        weight -= scratch

    def get_config(self):
        return {**super().get_config(), "beta_1": self.beta_1, "beta_2": self.beta_2,
                "epsilon": self.epsilon}


def _moving_average(average, value, decay, scratch):
    """average = decay * average + (1 - decay) * value, in place, written as
    Keras's Adam writes it: average += (value - average) * (1 - decay).
    ``value`` may be ``scratch``."""
    np.subtract(value, average, out=scratch)
    scratch *= 1 - decay
    average += scratch
