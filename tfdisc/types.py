"""The type aliases of tfdisc's public signatures."""

import os
from typing import Callable, Iterable, Union

import numpy as np
import tensorflow as tf

TensorLike = Union[tf.Tensor, np.ndarray, float, int]
"""A tensor, an array or a Python number."""

ModelFn = Callable[[tf.Tensor], tf.Tensor]
"""A Keras model, or any function from a batch of images in [0, 1] to logits."""

LossFn = Callable[[tf.Tensor, tf.Tensor], tf.Tensor]
"""`loss(labels, logits)`: one loss per example."""

Data = Union[tf.data.Dataset, tuple]
"""A `tf.data.Dataset` of (images, labels) batches, or an (images, labels) pair of arrays."""

EpsValues = Iterable[float]
"""ε values in [0, 1] pixel units (`tfdisc.eps.values` sorts them and drops repeats)."""

Path = Union[str, os.PathLike]
"""A file system path."""
