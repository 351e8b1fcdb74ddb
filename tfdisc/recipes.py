"""Training recipes: the optimizer, its learning rate per epoch, and whether CIFAR images are augmented.

A recipe is one registry entry (`RECIPES`). `constant` takes the optimizer and learning rate the user
gives; the others fix both and refuse them (so a run's record names everything that trained it).

- `reference`: the study's reference code, BinaryNet.pytorch's CIFAR AlexNet regimes. Full precision: SGD,
  momentum 0.9, weight decay 5e-4, lr 1e-2 stepped down at epochs 10/15/20/25. Binarized (bnn, xnor): Adam at
  5e-3 stepped down at 20/30/35/40. CIFAR images padded by 4, randomly cropped and flipped.
- `cosine`: budget-aware; Adam, one epoch of linear warm-up to the peak (5e-3 binarized, 1e-3 full precision), then
  a cosine decay that reaches 0 at the run's last epoch, so a short run ends at a small learning rate. Augmented.
- `larq`: after Larq's BinaryNet CIFAR-10 tutorial: Adam at 1e-2 with inverse-time decay, 1e-2 / (1 + 0.1·epoch)
  (its 1e-4 a step at its 1 000 steps an epoch), no augmentation.
"""

import dataclasses
import math
from typing import Callable

import tensorflow as tf

OPTIMIZERS = {"adam": tf.keras.optimizers.Adam, "sgd": lambda lr: tf.keras.optimizers.SGD(lr, momentum=0.9)}


@dataclasses.dataclass(frozen=True)
class Recipe:
    """How a model trains. `rate(epoch, epochs, binarized)` is the learning rate of an epoch (0-based) of a run of
    `epochs` epochs; None for `constant`, whose rate is the user's."""

    name: str
    optimizer: Callable[[bool], Callable[[float], tf.keras.optimizers.Optimizer]] | None
    rate: Callable[[int, int, bool], float] | None
    augments: bool


def _steps(regime):
    return lambda epoch: regime[max(e for e in regime if e <= epoch)]


_FULL_STEPS = _steps({0: 1e-2, 10: 5e-3, 15: 1e-3, 20: 5e-4, 25: 1e-4})
_BINARIZED_STEPS = _steps({0: 5e-3, 20: 1e-3, 30: 5e-4, 35: 1e-4, 40: 1e-5})


def _reference_optimizer(binarized):
    return tf.keras.optimizers.Adam if binarized else (
        lambda lr: tf.keras.optimizers.SGD(lr, momentum=0.9, weight_decay=5e-4))


def _cosine(epoch, epochs, binarized, warmup=1):
    peak = 5e-3 if binarized else 1e-3
    if epoch < warmup:
        return peak * (epoch + 1) / (warmup + 1)
    # The rate at the middle of the epoch, so the last epoch trains at a small, not a zero, rate.
    progress = (epoch - warmup + 0.5) / max(1, epochs - warmup)
    return peak * 0.5 * (1 + math.cos(math.pi * min(1.0, progress)))


RECIPES = {recipe.name: recipe for recipe in (
    Recipe("constant", None, None, augments=False),
    Recipe("reference", _reference_optimizer,
           lambda epoch, epochs, binarized: (_BINARIZED_STEPS if binarized else _FULL_STEPS)(epoch), augments=True),
    Recipe("cosine", lambda binarized: tf.keras.optimizers.Adam, _cosine, augments=True),
    Recipe("larq", lambda binarized: tf.keras.optimizers.Adam, lambda epoch, epochs, binarized: 1e-2 / (1 + 0.1 * epoch),
           augments=False),
)}


def get(name: str) -> Recipe:
    """The recipe `name`; ValueError listing the known ones otherwise."""
    if name not in RECIPES:
        raise ValueError(f"Unknown recipe {name!r}; valid values are {', '.join(map(repr, RECIPES))}.")
    return RECIPES[name]


def optimizer(name: str, *, binarized: bool, epochs: int, optimizer_name: str = "adam",
              learning_rate: float = 1e-3) -> tf.keras.optimizers.Optimizer:
    """The recipe's optimizer at its first epoch's rate (`constant`: `optimizer_name` at `learning_rate`)."""
    recipe = get(name)
    if recipe.rate is None:
        return OPTIMIZERS[optimizer_name](learning_rate)
    return recipe.optimizer(binarized)(recipe.rate(0, epochs, binarized))


def schedule(name: str, *, binarized: bool, epochs: int) -> list[tf.keras.callbacks.Callback]:
    """The callbacks that set the recipe's rate at every epoch's start (none for `constant`)."""
    recipe = get(name)
    if recipe.rate is None:
        return []
    return [tf.keras.callbacks.LearningRateScheduler(lambda epoch: recipe.rate(epoch, epochs, binarized))]


def rates(name: str, *, binarized: bool, epochs: int) -> list[float] | None:
    """The learning rate of each epoch, or None for `constant`."""
    recipe = get(name)
    return None if recipe.rate is None else [recipe.rate(e, epochs, binarized) for e in range(epochs)]
