import numpy as np
import pytest
import tensorflow as tf

from helpers import accuracy
from tfdisc import attacks, models

ATTACKS = {
    "fgsm": lambda m, x, y, eps: attacks.fast_gradient_method(m, x, eps, y=y),
    "rfgsm": lambda m, x, y, eps: attacks.random_fgsm(m, x, eps, eps / 2, y=y, seed=1),
    "pgd": lambda m, x, y, eps: attacks.projected_gradient_descent(m, x, eps, eps / 4, 5, y=y, seed=1),
    "pgd_restarts": lambda m, x, y, eps: attacks.projected_gradient_descent(m, x, eps, eps / 4, 3, y=y, seed=1,
                                                                           n_restarts=3),
    "square": lambda m, x, y, eps: attacks.square_attack(m, x, eps, y=y, n_queries=20, seed=1),
    "apgd_ce": lambda m, x, y, eps: attacks.apgd(m, x, eps, y=y, n_iter=10, seed=1),
    "apgd_t": lambda m, x, y, eps: attacks.apgd(m, x, eps, y=y, loss="dlr", targeted=True, n_target_classes=2,
                                                n_iter=5, seed=1),
}


@pytest.fixture
def small_model():
    return models.build_model("fcn2", width=16, depth=2)


@pytest.fixture
def batch():
    rng = np.random.default_rng(0)
    x = rng.random((16, 28, 28, 1)).astype(np.float32)
    x[:, :4] = 0.0  # pixels at the clip bounds must stay inside [0, 1]
    x[:, -4:] = 1.0
    return x, rng.integers(0, 10, 16)


@pytest.mark.parametrize("name", list(ATTACKS))
def test_eps_zero_is_the_identity(name, small_model, batch):
    x, y = batch
    np.testing.assert_array_equal(ATTACKS[name](small_model, x, y, 0.0).numpy(), x)


@pytest.mark.parametrize("name", list(ATTACKS))
@pytest.mark.parametrize("eps", [0.05, 0.3])
def test_results_stay_in_the_eps_ball_and_clip_range(name, eps, small_model, batch):
    x, y = batch
    x_adv = ATTACKS[name](small_model, x, y, eps).numpy()
    assert np.abs(x_adv - x).max() <= eps + 1e-6
    assert x_adv.min() >= 0.0 and x_adv.max() <= 1.0
    assert np.abs(x_adv - x).max() > 0


def test_fgsm_takes_full_eps_steps_and_honours_custom_clip(small_model, batch):
    x, y = batch
    x = np.clip(x, 0.2, 0.8)
    x_adv = attacks.fast_gradient_method(small_model, x, 0.1, y=y, clip_min=0.15, clip_max=0.85).numpy()
    assert x_adv.min() >= np.float32(0.15) and x_adv.max() <= np.float32(0.85)
    assert np.isclose(np.abs(x_adv - x).max(), 0.1, atol=1e-6)


def test_attacks_lower_a_trained_models_accuracy(trained_fcn, mnist_small):
    _, _, x, y = mnist_small
    clean = accuracy(trained_fcn, x, y)
    assert clean > 0.85
    for name, attack in ATTACKS.items():
        if name != "square":  # needs more queries; see test_square_attack_needs_no_gradients
            assert accuracy(trained_fcn, attack(trained_fcn, x, y, 0.1), y) < clean - 0.3, name
    fgsm = accuracy(trained_fcn, ATTACKS["fgsm"](trained_fcn, x, y, 0.1), y)
    pgd = attacks.projected_gradient_descent(trained_fcn, x, 0.1, 0.025, 10, y=y, seed=0)
    assert accuracy(trained_fcn, pgd, y) <= fgsm


def test_square_attack_needs_no_gradients(trained_fcn, mnist_small):
    _, _, x, y = mnist_small
    scores_only = lambda z: tf.stop_gradient(trained_fcn(z, training=False))  # noqa: E731
    with tf.GradientTape() as tape:
        z = tf.constant(x[:4])
        tape.watch(z)
        assert tape.gradient(tf.reduce_sum(scores_only(z)), z) is None
    x_adv = tf.function(lambda: attacks.square_attack(scores_only, x, 0.2, y=y, n_queries=300, seed=0))()
    assert accuracy(trained_fcn, x_adv, y) < accuracy(trained_fcn, x, y) - 0.4
    assert np.abs(x_adv.numpy() - x).max() <= 0.2 + 1e-6


def test_pgd_restarts_never_do_worse_than_one_start(trained_fcn, mnist_small):
    _, _, x, y = mnist_small
    one = attacks.projected_gradient_descent(trained_fcn, x, 0.06, 0.02, 5, y=y, seed=3)
    many = attacks.projected_gradient_descent(trained_fcn, x, 0.06, 0.02, 5, y=y, seed=3, n_restarts=4)
    fooled = lambda x_adv: np.argmax(trained_fcn(x_adv, training=False), -1) != y  # noqa: E731
    assert np.all(fooled(many) >= fooled(one))  # every example one start fools stays fooled
    assert fooled(many).sum() > fooled(one).sum()
    assert np.abs(many.numpy() - x).max() <= 0.06 + 1e-6


def test_transfer_from_a_model_to_itself_equals_the_white_box_attack(trained_fcn, mnist_small):
    _, _, x, y = mnist_small
    np.testing.assert_array_equal(attacks.transfer_attack(trained_fcn, x, 0.1, y=y).numpy(),
                                  attacks.fast_gradient_method(trained_fcn, x, 0.1, y=y).numpy())


def test_square_attack_needs_images(small_model):
    with pytest.raises(ValueError, match="square_attack needs NHWC images"):
        attacks.square_attack(small_model, np.zeros((2, 784), np.float32), 0.1, y=np.zeros(2, np.int64))


@pytest.mark.parametrize("args, kwargs", [
    ((0.05, np.inf), {"clip_min": 0.0, "clip_max": 1.0}),
    ((0.2, np.inf), {"clip_min": 0.0, "clip_max": 1.0, "y": "labels"}),
    ((0.1, np.inf), {"clip_min": 0.0, "clip_max": 1.0, "y": "target", "targeted": True}),
])
def test_fgsm_equals_cleverhans_called_with_identical_arguments(trained_fcn, mnist_small, args, kwargs):
    from cleverhans.tf2.attacks.fast_gradient_method import fast_gradient_method as cleverhans_fgm

    _, _, x, y = mnist_small
    kwargs = {**kwargs, **({"y": {"labels": y, "target": np.full(len(y), 3)}[kwargs["y"]]} if "y" in kwargs else {})}
    np.testing.assert_array_equal(attacks.fast_gradient_method(trained_fcn, x, *args, **kwargs).numpy(),
                                  cleverhans_fgm(trained_fcn, x, *args, **kwargs).numpy())


def test_pgd_equals_cleverhans_without_random_start(trained_fcn, mnist_small):
    from cleverhans.tf2.attacks.projected_gradient_descent import projected_gradient_descent as cleverhans_pgd

    _, _, x, y = mnist_small
    args, kwargs = (0.1, 0.01, 5, np.inf), {"clip_min": 0.0, "clip_max": 1.0, "y": y, "rand_init": False}
    ours = attacks.projected_gradient_descent(trained_fcn, x, *args, **kwargs).numpy()
    np.testing.assert_allclose(ours, cleverhans_pgd(trained_fcn, x, *args, **kwargs).numpy(), atol=1e-6)


def test_targeted_fgsm_moves_toward_the_target(trained_fcn, mnist_small):
    _, _, x, _ = mnist_small
    target = np.full(len(x), 3)
    x_adv = attacks.fast_gradient_method(trained_fcn, x, 0.15, y=target, targeted=True)
    assert accuracy(trained_fcn, x_adv, target) > accuracy(trained_fcn, x, target) + 0.2


def test_changing_eps_never_retraces(small_model, batch):
    x, y = batch
    traces = []

    @tf.function
    def attack(x, y, eps):
        traces.append(1)
        return attacks.projected_gradient_descent(small_model, x, eps, eps / 4, 3, y=y, seed=0)

    @tf.function
    def square(x, y, eps):
        traces.append(1)
        return attacks.square_attack(small_model, x, eps, y=y, n_queries=5, seed=0)

    for eps in (0.0, 0.1, 0.2, 0.3):
        attack(x, y, tf.constant(eps))
        square(x, y, tf.constant(eps))
    assert len(traces) == 2


@pytest.mark.parametrize("eps", [-0.1, 1.5, float("nan")])
def test_symbolic_bad_eps_fails_inside_a_graph(small_model, batch, eps):
    x, y = batch
    fgsm = tf.function(lambda eps: attacks.fast_gradient_method(small_model, x, eps, y=y))
    with pytest.raises(tf.errors.InvalidArgumentError, match=r"eps must be a finite L∞ budget in \[0, 1\]"):
        fgsm(tf.constant(eps))


@pytest.mark.parametrize("call, message", [
    (lambda m, x, y: attacks.fast_gradient_method(m, x, -0.1, y=y), r"eps must be a finite .* got -0.1"),
    (lambda m, x, y: attacks.fast_gradient_method(m, x, 1.5, y=y), r"eps must be a finite .* got 1.5"),
    (lambda m, x, y: attacks.fast_gradient_method(m, x, float("nan"), y=y), r"eps must be a finite .* got nan"),
    (lambda m, x, y: attacks.fast_gradient_method(m, x, 0.1, 2, y=y), "norm must be np.inf"),
    (lambda m, x, y: attacks.fast_gradient_method(m, x, 0.1, y=y + 10), r"Labels must be int class ids in 0..9"),
    (lambda m, x, y: attacks.fast_gradient_method(m, x * 255, 0.1, y=y), r"Float pixels must lie in \[0, 1\]"),
    (lambda m, x, y: attacks.fast_gradient_method(m, x * np.nan, 0.1, y=y), "Pixels contain .* NaN"),
    (lambda m, x, y: attacks.random_fgsm(m, x, 0.1, 0.2, y=y), "alpha must be <= eps"),
    (lambda m, x, y: attacks.random_fgsm(m, x, 0.1, -0.05, y=y), r"alpha must be a finite .* got -0.05"),
    (lambda m, x, y: attacks.projected_gradient_descent(m, x, 0.1, -0.01, 5, y=y), r"eps_iter must be a finite"),
    (lambda m, x, y: attacks.projected_gradient_descent(m, x, 0.1, 0.01, 0, y=y), "nb_iter must be a positive int"),
    (lambda m, x, y: attacks.projected_gradient_descent(m, x, 0.1, 0.01, 2, y=y, n_restarts=0),
     "n_restarts must be a positive int"),
    (lambda m, x, y: attacks.square_attack(m, x, -0.1, y=y), r"eps must be a finite"),
    (lambda m, x, y: attacks.square_attack(m, x, 0.1, y=y, n_queries=0), "n_queries must be a positive int"),
    (lambda m, x, y: attacks.fast_gradient_method(m, x.astype(np.int32), 0.1, y=y), "uint8 0..255 or float"),
    (lambda m, x, y: attacks.apgd(m, x, 0.1, y=y, loss="cw"), "Unknown loss 'cw'; valid values are 'ce', 'dlr'"),
    (lambda m, x, y: attacks.apgd(m, x, 0.1, y=y, n_iter=0), "n_iter must be a positive int"),
    (lambda m, x, y: attacks.apgd(m, x, 1.5, y=y), r"eps must be a finite .* got 1.5"),
    (lambda m, x, y: attacks.apgd(m, x, 0.1, y=y, targeted=True, n_target_classes=10),
     "n_target_classes must be at most 9"),
    (lambda m, x, y: attacks.apgd(lambda z: m(z)[:, :3], x, 0.1, y=y % 3, loss="dlr", targeted=True),
     "Targeted APGD with loss='dlr' needs a model with at least 4 classes; this one has 3"),
    (lambda m, x, y: attacks.apgd(lambda z: m(z)[:, :1], x, 0.1, y=y * 0, targeted=True, loss="ce"),
     "needs a model with at least 2 classes; this one has 1"),
])
def test_bad_arguments_raise(call, message, small_model, batch):
    x, y = batch
    with pytest.raises(ValueError, match=message):
        call(small_model, x, y)


@pytest.mark.parametrize("name", ["fgsm", "pgd", "square", "apgd_ce"])
def test_float64_inputs_keep_their_dtype(name, batch):
    x, y = batch
    model_fn = lambda z: tf.reshape(tf.cast(z, tf.float64), [-1, 784])[:, :10]  # noqa: E731  (a float64 "model")
    x_adv = ATTACKS[name](model_fn, x.astype(np.float64), y, 0.1)
    assert x_adv.dtype == tf.float64


def test_random_fgsm_with_a_seed_is_reproducible(small_model, batch):
    x, y = batch
    a = attacks.random_fgsm(small_model, x, 0.1, 0.05, y=y, seed=3).numpy()
    b = attacks.random_fgsm(small_model, x, 0.1, 0.05, y=y, seed=3).numpy()
    np.testing.assert_array_equal(a, b)


def test_apgd_is_never_weaker_than_pgd_with_the_same_budget(trained_fcn, mnist_small):
    _, _, x, y = mnist_small
    for eps in (0.03, 0.06):
        pgd = attacks.projected_gradient_descent(trained_fcn, x, eps, 2.5 * eps / 20, 20, y=y, seed=0)
        apgd = tf.function(lambda: attacks.apgd(trained_fcn, x, eps, y=y, n_iter=20, seed=0))()
        assert accuracy(trained_fcn, apgd, y) <= accuracy(trained_fcn, pgd, y)


def test_apgd_restarts_and_targets_run_only_on_survivors_and_never_undo_a_success(trained_fcn, mnist_small):
    _, _, x, y = mnist_small
    fooled = lambda x_adv: np.argmax(trained_fcn(x_adv, training=False), -1) != y  # noqa: E731
    one = attacks.apgd(trained_fcn, x, 0.04, y=y, n_iter=10, seed=0)
    more = attacks.apgd(trained_fcn, x, 0.04, y=y, n_iter=10, seed=0, n_restarts=3)
    assert np.all(fooled(more) >= fooled(one)) and fooled(more).sum() >= fooled(one).sum()


def test_apgd_under_xla_attacks_every_row_and_still_never_undoes_a_success(trained_fcn, mnist_small):
    """XLA needs static shapes, so restarts and targets run on every row and keep only the survivors' results."""
    _, _, x, y = mnist_small
    x, y = x[:64], y[:64]
    fooled = lambda x_adv: np.argmax(trained_fcn(x_adv, training=False), -1) != y  # noqa: E731

    def xla_apgd(**kwargs):
        return tf.function(lambda: attacks.apgd(trained_fcn, x, 0.04, y=y, n_iter=10, seed=0, loss="dlr",
                                                targeted=True, **kwargs), jit_compile=True)().numpy()

    one, more = xla_apgd(n_target_classes=1), xla_apgd(n_target_classes=3, n_restarts=2)
    assert np.all(fooled(more) >= fooled(one)) and fooled(more).sum() > fooled(one).sum() > 0
    assert np.abs(more - x).max() <= 0.04 + 1e-6 and more.min() >= 0.0 and more.max() <= 1.0
    wrong = (np.argmax(trained_fcn(x, training=False), -1) + 1) % 10  # every example already misclassified
    np.testing.assert_array_equal(
        tf.function(lambda: attacks.apgd(trained_fcn, x, 0.1, y=wrong, n_iter=3, seed=0), jit_compile=True)(), x)


def test_margin_loss_is_the_best_other_logit_minus_the_true_one():
    logits = tf.constant([[3.0, 1.0, 2.0], [0.0, 5.0, -1.0]])
    np.testing.assert_allclose(attacks.margin_loss(tf.constant([0, 2]), logits).numpy(), [-1.0, 6.0])


def test_dlr_loss_divides_the_margin_by_the_spread_of_the_top_three_logits():
    logits = tf.constant([[3.0, 1.0, 2.0], [0.0, 5.0, -1.0]])
    np.testing.assert_allclose(attacks.dlr_loss(tf.constant([0, 2]), logits).numpy(), [-0.5, 1.0])


def test_dlr_loss_is_invariant_to_shifting_and_scaling_the_logits():
    rng = np.random.default_rng(0)
    logits, labels, target = rng.normal(size=(32, 10)), rng.integers(0, 10, 32), rng.integers(0, 10, 32)
    for kwargs in ({}, {"target": target}):
        base = attacks.dlr_loss(labels, tf.constant(logits), **kwargs).numpy()
        moved = attacks.dlr_loss(labels, tf.constant(3.7 * logits - 11.0), **kwargs).numpy()
        np.testing.assert_allclose(moved, base, rtol=1e-6, atol=1e-9)


def test_targeted_apgd_moves_toward_the_target(trained_fcn, mnist_small):
    _, _, x, y = mnist_small
    second = np.argsort(trained_fcn(x, training=False).numpy(), axis=-1)[:, -2]  # the first target class
    x_adv = attacks.apgd(trained_fcn, x, 0.05, y=y, loss="dlr", targeted=True, n_target_classes=1, n_iter=20, seed=0)
    predicted = np.argmax(trained_fcn(x_adv, training=False), -1)
    fooled = predicted != y
    assert fooled.sum() > 50 and np.mean(predicted[fooled] == second[fooled]) > 0.8


def test_apgd_does_not_retrace_when_eps_changes(small_model, batch):
    x, y = batch
    run = tf.function(lambda eps: attacks.apgd(small_model, x, eps, y=y, n_iter=3, seed=0))
    for eps in (0.0, 0.1, 0.2):
        run(tf.constant(eps))
    assert run.experimental_get_tracing_count() == 1


def test_apgd_runs_on_an_empty_batch_and_leaves_fooled_examples_alone(small_model, batch):
    """The report's cascade may hand an attack no survivors at all, or only fooled ones."""
    x, y = batch
    empty = tf.function(lambda x, y: attacks.apgd(small_model, x, 0.1, y=y, n_iter=3, seed=0))(x[:0], y[:0])
    assert empty.shape == (0, 28, 28, 1)
    wrong = (np.argmax(small_model(x, training=False), -1) + 1) % 10  # every example already misclassified
    np.testing.assert_array_equal(attacks.apgd(small_model, x, 0.1, y=wrong, n_iter=3, seed=0).numpy(), x)
