"""Small random models of every layer type the certification covers, with BatchNorm statistics drawn at random
(untrained models would have trivial ones), shared by the certification tests."""

import numpy as np
import tensorflow as tf

from tfdisc import models

SHAPES = {"fcn2": (6, 6, 1), "alexnet": (8, 8, 3), "resnet20": (8, 8, 3)}
OPTIONS = {"fcn2": {"width": 12, "depth": 2}, "alexnet": {"fc_units": 12, "inflation": 1},
           "resnet20": {"blocks_per_stage": 1, "filters": (4, 6, 8)}}


def random_model(arch, precision, bits=2, seed=0, num_classes=4):
    tf.keras.utils.set_random_seed(seed)
    model = models.build_model(arch, precision=precision, input_bits=bits, input_shape=SHAPES[arch],
                               num_classes=num_classes, **OPTIONS[arch])
    rng = np.random.default_rng(seed)
    draw = {"gamma": lambda shape: rng.uniform(0.5, 1.5, shape) * rng.choice([-1, 1], shape),
            "beta": lambda shape: rng.normal(0, 0.1, shape), "moving_mean": lambda shape: rng.normal(0, 0.3, shape),
            "moving_variance": lambda shape: rng.uniform(0.5, 2.0, shape)}
    for layer in model.layers:
        if isinstance(layer, tf.keras.layers.BatchNormalization):
            for weight in layer.weights:
                name = weight.name.split("/")[-1].split(":")[0]
                weight.assign(draw[name](weight.shape).astype(np.float32))
    return model


def random_images(arch, n, seed=0):
    return np.random.default_rng(seed).integers(0, 256, (n,) + SHAPES[arch]).astype(np.float32) / 255
