"""tfdisc.evaluation.registry: one entry per attack, and the kinds every user of the registry reads."""

import pytest
import tensorflow as tf

from tfdisc.evaluation import registry


def test_kinds_are_read_from_the_entries():
    assert registry.names("white_box") == ("fgsm", "pgd", "apgd-ce", "apgd-dlr", "apgd-t")
    assert registry.names("black_box") == ("square", "transfer", "discrete")
    assert "fgsm" not in registry.names("iterative") and "square" in registry.names("iterative")
    assert registry.NAMES[-1] == "autoattack" and set(registry.DEFAULT) <= set(registry.NAMES)


def test_every_attack_stays_in_the_ball_and_the_clip_range(trained_fcn, mnist_small):
    _, _, x, y = mnist_small
    x, y = tf.constant(x[:4]), tf.constant(y[:4])
    settings = registry.Settings(pgd_steps=2, restarts=1, square_queries=5, surrogate=trained_fcn)
    for name in registry.ATTACKS:
        x_adv = registry.clipped(name, trained_fcn, settings)(x, y, tf.constant(0.1), None)
        assert float(tf.reduce_max(tf.abs(x_adv - x))) <= 0.1 + 1e-6, name
        assert 0 <= float(tf.reduce_min(x_adv)) and float(tf.reduce_max(x_adv)) <= 1, name


def test_unknown_names_and_a_missing_surrogate_are_named():
    with pytest.raises(ValueError, match=r"Unknown attack\(s\) \['cw'\]"):
        registry.check_names(["fgsm", "cw"])
    with pytest.raises(ValueError, match="needs a surrogate"):
        registry.clipped("transfer", None, registry.Settings())
