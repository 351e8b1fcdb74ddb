"""tfdisc.evaluation.report: every attack, AutoAttack's cascade, the worst case and the checks it runs."""

import numpy as np
import pytest
import tensorflow as tf

from tfdisc import evaluation, models

EPS = [0.0, 0.05, 0.1, 0.2, 0.3]


@pytest.fixture(scope="module")
def trained_2bit(mnist_small):
    x, y, _, _ = mnist_small
    tf.keras.utils.set_random_seed(1)
    model = models.build_model("fcn2", width=64, depth=2, input_bits=2)
    model.compile(tf.keras.optimizers.Adam(1e-3), tf.keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    model.fit(x, y, batch_size=64, epochs=3, verbose=0)
    return model


REPORT_EPS = [0.0, 0.1, 0.3, 0.5]


def _report(model, data, surrogate, **kwargs):
    return evaluation.robustness_report(model, data, REPORT_EPS, ("fgsm", "pgd", "square", "transfer", "autoattack"),
                                        surrogate=surrogate, version="fast", pgd_steps=5, pgd_restarts=1,
                                        square_queries=150, large_eps=0.5, **kwargs)


@pytest.mark.parametrize("gradient", ["identity", "zero"])
def test_report_flags_masked_gradients_and_passes_straight_through_ones(trained_2bit, trained_fcn, mnist_small,
                                                                         gradient):
    _, _, x, y = mnist_small
    trained_2bit.layers[1].gradient = gradient
    try:
        report = _report(trained_2bit, (x[:200], y[:200]), trained_fcn)
    finally:
        trained_2bit.layers[1].gradient = "identity"
    failed = {c["check"] for c in report["checks"] if not c["passed"]}
    if gradient == "identity":
        assert not failed and not report["masking_suspected"]
    else:
        assert report["masking_suspected"]
        assert {"whitebox_le_blackbox", "gradient_survivors_unbroken", "nonzero_gradients"} <= failed
        assert report["masking_examples"]["count"][-1] > 0
        assert report["attacks"]["fgsm"]["accuracy"] == [report["clean_accuracy"]] * len(REPORT_EPS)
        assert report["attacks"]["square"]["accuracy"][-1] < 0.2
        assert all("possible gradient masking" in c["detail"] for c in report["checks"] if not c["passed"])
        assert report["zero_gradient_examples"] == 200 and report["saturated_loss_examples"] == 0
    assert report["gradient"] == gradient
    for name, curve in report["attacks"].items():
        assert all(w <= a for w, a in zip(report["worst_case"]["accuracy"], curve["accuracy"])), name


def test_report_transfer_from_the_model_itself_equals_fgsm(trained_fcn, mnist_small):
    _, _, x, y = mnist_small
    report = evaluation.robustness_report(trained_fcn, (x, y), [0.0, 0.1], ("fgsm", "transfer"), surrogate=trained_fcn)
    assert report["attacks"]["transfer"]["accuracy"] == report["attacks"]["fgsm"]["accuracy"]
    assert report["worst_case"]["accuracy"] == report["attacks"]["fgsm"]["accuracy"]


@pytest.mark.parametrize("kwargs, message", [
    ({"attacks": ("fgsm", "cw")},
     r"Unknown attack\(s\) \['cw'\]; valid values are 'fgsm', 'pgd', 'apgd-ce', 'apgd-dlr', 'apgd-t', 'square'"),
    ({"attacks": ("transfer",)}, "The transfer attack needs a surrogate model"),
    ({"version": "plus"}, "Unknown version .plus.; valid values are .standard., .fast."),
    ({"pgd_restarts": 0}, "pgd_restarts must be a positive int; got 0"),
])
def test_report_bad_arguments_raise(trained_fcn, mnist_small, kwargs, message):
    _, _, x, y = mnist_small
    with pytest.raises(ValueError, match=message):
        evaluation.robustness_report(trained_fcn, (x, y), [0.1], **kwargs)


def test_a_gradient_mode_reaches_compiled_functions_and_leaves_the_model_alone(mnist_small):
    """gradient= builds its own functions; compiled functions of the model, and the model, keep their mode."""
    _, _, x, y = mnist_small
    model = models.build_model("fcn2", width=16, depth=1, input_bits=2)
    model.compile("adam", tf.keras.losses.SparseCategoricalCrossentropy(from_logits=True), metrics=["accuracy"])
    identity = evaluation.FgsmSweep(model)
    before = identity((x, y), [0.0, 0.3])
    model.evaluate(x, y, verbose=0)  # traces the model's test_function
    zero = evaluation.sweep(model, (x, y), [0.0, 0.3], gradient="zero")
    assert zero["gradient"] == "zero" and zero["accuracy"][0] == zero["accuracy"][1]  # masked: FGSM cannot move
    assert identity((x, y), [0.0, 0.3]) == before and before["accuracy"][1] < before["accuracy"][0]
    assert models.discretization_gradient(model) == "identity"
    assert model.evaluate(x, y, verbose=0, return_dict=True) == model.evaluate(x, y, verbose=0, return_dict=True)
    report = evaluation.robustness_report(model, (x, y), [0.0, 0.3], attacks=("fgsm",), gradient="zero")
    assert report["gradient"] == "zero" and report["attacks"]["fgsm"]["accuracy"] == zero["accuracy"]


def test_diverged_weights_are_named_not_blamed_on_the_input(trained_fcn, mnist_small):
    _, _, x, y = mnist_small
    broken = tf.keras.models.clone_model(trained_fcn)
    broken.set_weights([w * np.nan for w in trained_fcn.get_weights()])
    with pytest.raises(ValueError, match="logits are NaN or infinite for 500 of 500 examples: its weights have "
                                         "probably diverged"):
        evaluation.sweep(broken, (x, y), [0.0, 0.1])


@pytest.mark.slow
def test_report_runs_apgd_and_it_is_at_least_as_strong_as_fgsm(trained_fcn, mnist_small):
    _, _, x, y = mnist_small
    report = evaluation.robustness_report(trained_fcn, (x[:100], y[:100]), [0.0, 0.05],
                                          attacks=("fgsm", "apgd-ce", "apgd-t"), pgd_restarts=1, seed=0)
    fgsm, apgd_ce, apgd_t = (report["attacks"][name]["accuracy"] for name in ("fgsm", "apgd-ce", "apgd-t"))
    assert fgsm[0] == apgd_ce[0] == apgd_t[0] == report["clean_accuracy"]
    assert apgd_ce[1] <= fgsm[1] and apgd_t[1] <= fgsm[1]
    assert report["worst_case"]["accuracy"][1] <= min(fgsm[1], apgd_ce[1], apgd_t[1])


def _counting(fn, model, seen, misclassified):
    """`fn`, also adding the batch size it is given and how many of it `model` misclassifies."""
    def wrapped(x, y, eps, direction):
        seen.assign_add(tf.shape(x, out_type=tf.int64)[0])
        misclassified.assign_add(tf.reduce_sum(tf.cast(tf.argmax(model(x), axis=-1) != y, tf.int64)))
        return fn(x, y, eps, direction)
    return wrapped


def test_autoattack_cascade_attacks_only_the_survivors(trained_fcn, mnist_small):
    _, _, x, y = mnist_small
    report = evaluation.RobustnessReport(trained_fcn, ("autoattack",), version="fast")
    seen = [tf.Variable(0, dtype=tf.int64) for _ in report._stages]
    misclassified = [tf.Variable(0, dtype=tf.int64) for _ in report._stages]
    report._stages = [(name, _counting(fn, trained_fcn, s, m))
                      for (name, fn), s, m in zip(report._stages, seen, misclassified)]
    report._batch_counts = tf.function(report._counts)
    eps = [0.05, 0.1]
    result = report((x[:100], y[:100]), eps)
    after = result["attacks"]["autoattack"]["after"]
    assert list(after) == ["apgd-ce", "apgd-dlr"]
    assert seen[0].numpy() == round(len(eps) * 100 * result["clean_accuracy"])
    assert seen[1].numpy() == round(100 * sum(after["apgd-ce"]))
    assert [m.numpy() for m in misclassified] == [0, 0]  # no stage ever sees an example already broken
    assert all(b <= a <= result["clean_accuracy"] for a, b in zip(after["apgd-ce"], after["apgd-dlr"]))
    assert result["attacks"]["autoattack"]["accuracy"] == after["apgd-dlr"] == result["worst_case"]["accuracy"]
    assert after["apgd-dlr"][1] < after["apgd-ce"][0]


def test_standard_autoattack_is_at_least_as_strong_as_its_first_stage_alone(trained_fcn, mnist_small):
    _, _, x, y = mnist_small
    result = evaluation.robustness_report(trained_fcn, (x[:60], y[:60]), [0.08], ("apgd-ce", "autoattack"),
                                          pgd_restarts=1)
    after = result["attacks"]["autoattack"]["after"]
    assert list(after) == ["apgd-ce", "apgd-t", "square"] and result["settings"]["autoattack"]["square_queries"] == 5000
    assert after["square"][0] <= after["apgd-t"][0] <= after["apgd-ce"][0] < result["clean_accuracy"]
    assert result["attacks"]["autoattack"]["accuracy"][0] <= result["attacks"]["apgd-ce"]["accuracy"][0] + 0.02
    assert "AutoAttack (standard)" in "\n".join(evaluation.report_lines(result))


def test_new_eps_never_retrace_the_report(trained_fcn, mnist_small):
    _, _, x, y = mnist_small
    report = evaluation.RobustnessReport(trained_fcn, ("fgsm", "pgd"), pgd_steps=2, pgd_restarts=1)
    report((x[:64], y[:64]), [0.1])
    traces = report._batch_counts.experimental_get_tracing_count()
    second = report((x[:64], y[:64]), [0.0, 0.2, 0.3])
    assert report._batch_counts.experimental_get_tracing_count() == traces
    assert second["attacks"]["pgd"]["accuracy"][0] == second["clean_accuracy"]


def test_a_reused_report_attacks_the_current_weights_of_a_bnn(mnist_small):
    x, y, x_test, y_test = mnist_small
    model = models.build_model("fcn2", precision="bnn", width=32, depth=2, input_bits=2)
    report = evaluation.RobustnessReport(model, ("fgsm", "pgd"), pgd_steps=2, pgd_restarts=1)
    assert report.model is not model  # its kernels binarized once per call, not per forward pass
    data, eps = (x_test[:100], y_test[:100]), [0.0, 0.1]
    untrained = report(data, eps)
    model.compile(tf.keras.optimizers.Adam(1e-2), tf.keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    model.fit(x[:1000], y[:1000], batch_size=100, verbose=0)
    trained = report(data, eps)
    fresh = evaluation.RobustnessReport(model, ("fgsm", "pgd"), pgd_steps=2, pgd_restarts=1)(data, eps)
    assert trained["clean_accuracy"] == fresh["clean_accuracy"] != untrained["clean_accuracy"]
    assert trained["attacks"] == fresh["attacks"] and trained["worst_case"] == fresh["worst_case"]


@pytest.mark.parametrize("rows", [1, 33, 100])
def test_xla_attacks_are_padded_to_a_few_batch_sizes_without_changing_any_row(rows):
    x = tf.random.stateless_uniform([rows, 4], [0, 1])
    y = tf.zeros([rows], tf.int64)
    row_wise = lambda x, y, eps, _: x + eps * tf.sign(x - 0.5)  # noqa: E731
    np.testing.assert_array_equal(evaluation.report._with_xla(row_wise)(x, y, tf.constant(0.1), None),
                                  row_wise(x, y, 0.1, None))
    assert evaluation.report.XLA_BATCH_SIZES[:5] == (32, 45, 64, 91, 128)


def test_a_report_with_xla_attacks_scores_as_graph_mode_does(trained_fcn, mnist_small):
    _, _, x, y = mnist_small
    data, eps = (x[:100], y[:100]), [0.0, 0.05, 0.1]
    kwargs = dict(attacks=("fgsm", "pgd", "autoattack"), version="fast", pgd_steps=5, pgd_restarts=1)
    graph = evaluation.robustness_report(trained_fcn, data, eps, **kwargs)
    xla = evaluation.robustness_report(trained_fcn, data, eps, jit_compile=True, **kwargs)
    assert xla["settings"]["jit_compile"] and not graph["settings"]["jit_compile"]
    assert xla["clean_accuracy"] == graph["clean_accuracy"]
    assert xla["attacks"]["fgsm"] == graph["attacks"]["fgsm"]  # a single step: not compiled
    for name in ("pgd", "autoattack"):  # the same attacks with other random draws
        assert xla["attacks"][name]["accuracy"][0] == graph["clean_accuracy"]
        np.testing.assert_allclose(xla["attacks"][name]["accuracy"], graph["attacks"][name]["accuracy"], atol=0.05)
    assert xla["attacks"]["autoattack"]["accuracy"][2] < xla["attacks"]["fgsm"]["accuracy"][2]


@pytest.mark.parametrize("bad, message", [
    ("nan_images", "Pixels contain .* NaN"),
    ("float255", r"must lie in \[0, 1\].*divide 0..255 images by 255"),
    ("label_10", r"Labels must be int class ids in 0..9 \(the model has 10 outputs\)"),
])
def test_a_report_with_xla_attacks_refuses_bad_input_as_graph_mode_does(trained_fcn, bad, message):
    x = np.full((4, 28, 28, 1), 0.5, np.float32)
    y = np.zeros(4, np.int64)
    data = {"nan_images": (x * np.nan, y), "float255": (x * 255, y), "label_10": (x, y + 10)}[bad]
    for jit_compile in (False, True):
        with pytest.raises(ValueError, match=message):
            evaluation.robustness_report(trained_fcn, data, [0.1], attacks=("pgd",), pgd_steps=1, pgd_restarts=1,
                                         jit_compile=jit_compile)


def test_report_tells_a_saturated_cross_entropy_from_a_zero_model_gradient(trained_fcn, mnist_small):
    """Logits scaled by 1000 make softmax exactly one-hot in float32: the loss, not the model, has no gradient."""
    _, _, x, y = mnist_small
    overconfident = tf.keras.Sequential([trained_fcn, tf.keras.layers.Rescaling(1000.0)])
    report = evaluation.robustness_report(overconfident, (x[:200], y[:200]), [0.0, 0.1], ("fgsm",))
    assert report["zero_gradient_examples"] > 100
    assert report["saturated_loss_examples"] == report["zero_gradient_examples"]
    found = next(c for c in report["checks"] if c["check"] == "nonzero_gradients")
    # A saturated loss is no masking: the check passes and says why those gradients are zero.
    assert found["passed"] and "float32 loss saturates" in found["detail"]


def test_the_report_can_say_which_examples_survived(trained_fcn, mnist_small):
    _, _, x, y = mnist_small
    report = evaluation.robustness_report(trained_fcn, (x[:50], y[:50]), [0.0, 0.3], attacks=("fgsm",))
    found = evaluation.RobustnessReport(trained_fcn, ("fgsm",))((x[:50], y[:50]), [0.0, 0.3], survivors=True)
    assert found["survivors"].shape == (2, 50)
    assert list(found["survivors"].mean(axis=1)) == report["worst_case"]["accuracy"]
