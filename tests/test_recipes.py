"""tfdisc.recipes: each recipe's optimizer and learning rate per epoch."""

import pytest
import tensorflow as tf

from tfdisc import recipes


@pytest.mark.parametrize("precision, rates", [("full", {0: 1e-2, 9: 1e-2, 10: 5e-3, 15: 1e-3, 27: 1e-4}),
                                              ("bnn", {0: 5e-3, 19: 5e-3, 20: 1e-3, 36: 1e-4, 40: 1e-5})])
def test_reference_recipe_steps_the_learning_rate_per_epoch(precision, rates):
    binarized = precision != "full"
    optimizer = recipes.optimizer("reference", binarized=binarized, epochs=40)
    (step,) = recipes.schedule("reference", binarized=binarized, epochs=40)
    expected = (tf.keras.optimizers.SGD, 5e-4) if precision == "full" else (tf.keras.optimizers.Adam, None)
    assert isinstance(optimizer, expected[0]) and optimizer.weight_decay == expected[1]
    assert {epoch: step.schedule(epoch) for epoch in rates} == rates


@pytest.mark.parametrize("epochs", [2, 10, 40])
def test_cosine_warms_up_then_falls_to_near_zero_at_the_last_epoch(epochs):
    rates = recipes.rates("cosine", binarized=True, epochs=epochs)
    assert rates[0] == pytest.approx(5e-3 / 2) and max(rates) <= 5e-3  # half the peak in the warm-up epoch
    assert all(later <= earlier for earlier, later in zip(rates[1:], rates[2:]))  # no rise after the warm-up
    assert 0 < rates[-1] < 0.1 * 5e-3 or epochs == 2


def test_larq_recipe_decays_inversely_with_the_epoch_and_does_not_augment():
    assert recipes.rates("larq", binarized=True, epochs=3) == pytest.approx([1e-2, 1e-2 / 1.1, 1e-2 / 1.2])
    assert not recipes.get("larq").augments and recipes.get("cosine").augments


def test_constant_uses_the_given_optimizer_and_rate_and_schedules_nothing():
    optimizer = recipes.optimizer("constant", binarized=False, epochs=3, optimizer_name="sgd", learning_rate=0.05)
    assert isinstance(optimizer, tf.keras.optimizers.SGD) and float(optimizer.learning_rate) == pytest.approx(0.05)
    assert recipes.schedule("constant", binarized=False, epochs=3) == [] and recipes.rates(
        "constant", binarized=False, epochs=3) is None


def test_an_unknown_recipe_names_the_valid_ones():
    with pytest.raises(ValueError, match="Unknown recipe 'fast'; valid values are 'constant', 'reference'"):
        recipes.get("fast")
