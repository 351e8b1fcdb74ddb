"""tfdisc.certification: no certified example is ever broken, and the bracket's bounds enclose the attacks'."""

import numpy as np
import pytest
import tensorflow as tf

from certification_models import random_images, random_model
from tfdisc import attacks, evaluation, ops
from tfdisc import certification as cert
from tfdisc.certification import bounds, search
from tfdisc.evaluation import discrete


@pytest.mark.parametrize("precision, seed", [("full", 6), ("bnn", 7), ("xnor", 8)])
def test_no_certified_example_is_broken_by_any_attack_or_by_enumeration(precision, seed):
    model = random_model("fcn2", precision, seed=seed)
    x = random_images("fcn2", 48, seed=seed)
    y = np.argmax(model(tf.constant(x), training=False), -1)  # every example starts correct: robustness decides
    discretization = bounds.discretization_layer(model)
    for eps in (0.01, 0.03):
        found = cert.certify(model, (x, y), [eps], bound="alpha-crown", enumeration_limit=2**10)
        outcome = found["outcomes"][0]
        certified = np.flatnonzero(outcome.status == "certified")
        assert found["certified"][0] + found["broken"][0] + found["unknown"][0] == pytest.approx(1.0)
        assert certified.size, "the test needs certified examples"
        xc, yc = tf.constant(x[certified]), tf.constant(y[certified])
        for x_adv in (attacks.projected_gradient_descent(model, xc, eps, eps / 4, 10, y=yc, n_restarts=2, seed=0),
                      discrete.discrete_search(model, xc, eps, yc, steps=30)):
            assert np.all(np.argmax(model(x_adv, training=False), -1) == y[certified])
        low, high = (v.numpy() for v in bounds.level_box(discretization, x[certified], eps))
        for i in range(len(certified)):
            if search.input_count(discretization, low[i], high[i]) <= 2**12:
                assert search.enumerate_box(model, discretization, low[i], high[i], y[certified][i])[0]


def test_the_bracket_encloses_the_attacks(trained_2bit_fcn):
    model, (x, y) = trained_2bit_fcn
    eps = [0.05, 0.1]
    found = cert.bracket(model, (x, y), eps, version="fast", bound="crown-refined", pgd_restarts=1)
    report = evaluation.robustness_report(model, (x, y), eps, attacks=("fgsm", "pgd", "autoattack"), version="fast",
                                          pgd_steps=10, pgd_restarts=1)
    for i in range(len(eps)):
        assert found["certified"][i] <= found["attacked"][i] <= report["clean_accuracy"]
        assert found["certified"][i] <= report["worst_case"]["accuracy"][i]  # a lower bound holds against any attack
        assert found["gap"][i] == pytest.approx(found["attacked"][i] - found["certified"][i])
        assert found["attacked_examples"][i] <= len(y) * (1 - found["certified"][i]) + 1e-9
        outcome = found["outcomes"][i]
        exact = np.flatnonzero((outcome.status == "broken") & (outcome.method != "attack"))
        assert sorted(outcome.counterexamples) == exact.tolist()  # the attacks' adversarial examples are not kept
    assert found["units"] == [64, 64]
    assert all(len(counts) == 2 and all(0 <= c <= 64 for c in counts) for counts in found["undecided"])


def test_a_model_the_relaxations_do_not_cover_reports_no_undecided_units():
    model = random_model("alexnet", "full", seed=1)
    x = random_images("alexnet", 4, seed=1)
    found = cert.certify(model, (x, np.argmax(model(tf.constant(x)), -1)), [0.02], bound="crown-refined",
                         enumeration_limit=1)
    assert found["units"] is None and found["undecided"] == [None]


@pytest.fixture(scope="module")
def trained_2bit_fcn(mnist_small):
    import tfdisc

    x, y, x_test, y_test = mnist_small
    tf.keras.utils.set_random_seed(0)
    model = tfdisc.models.build_model("fcn2", input_bits=2, width=64, depth=2)
    model.compile(tf.keras.optimizers.Adam(1e-3), tf.keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    model.fit(x, y, batch_size=100, epochs=2, verbose=0)
    return model, (x_test[:60], y_test[:60])


@pytest.mark.parametrize("option, value, message", [
    ("bound", "milp", "Unknown bound 'milp'"), ("split", "weights", "Unknown split 'weights'"),
    ("time_limit", -1.0, "time_limit must be a finite number of seconds ≥ 0 .0: no time limit.; got -1.0"),
    ("time_limit", float("inf"), "time_limit must be a finite number of seconds"),
    ("max_domains", -5, "max_domains must be an int ≥ 0 .0: no budget of parts.; got -5"),
    ("max_domains", 2.5, "max_domains must be an int"),
    ("enumeration_limit", -1, "enumeration_limit must be an int from 0 .no enumeration. to 2.40; got -1"),
    ("enumeration_limit", 2**41, "enumeration_limit must be an int from 0 .no enumeration. to 2.40; got 2199"),
    ("enumeration_limit", "2**16", "enumeration_limit must be an int")])
def test_a_bad_option_is_named(option, value, message):
    data = (random_images("fcn2", 2), np.zeros(2, int))
    with pytest.raises(ValueError, match=message):
        cert.certify(random_model("fcn2", "full"), data, [0.1], **{option: value})
    with pytest.raises(ValueError, match=message):
        cert.bracket(random_model("fcn2", "full"), data, [0.1], **{option: value})
    if option in ("bound", "enumeration_limit"):
        with pytest.raises(ValueError, match=message):
            cert.certified_report(random_model("fcn2", "full"), data, [0.1], ("fgsm",), **{option: value})


def test_a_budget_of_parts_alone_runs_branch_and_bound_and_repeats_its_verdicts():
    model = random_model("fcn2", "full", seed=4)
    data = (random_images("fcn2", 24, seed=4), np.argmax(model(random_images("fcn2", 24, seed=4)), -1))
    without = cert.certify(model, data, [0.08], bound="crown", enumeration_limit=1)
    assert without["unknown"][0] > 0, "the test needs examples the bounds leave"
    runs = [cert.certify(model, data, [0.08], bound="crown", enumeration_limit=1, max_domains=200) for _ in range(2)]
    assert runs[0]["methods"][0].get("branch_and_bound", 0) > 0
    assert runs[0]["unknown"][0] < without["unknown"][0]
    np.testing.assert_array_equal(runs[0]["outcomes"][0].status, runs[1]["outcomes"][0].status)


def test_every_exactly_broken_example_carries_a_misclassified_input_of_its_ball():
    model = random_model("fcn2", "full", seed=4)
    x = random_images("fcn2", 24, seed=4)
    y = np.argmax(model(tf.constant(x)), -1)
    y[:3] = (y[:3] + 1) % 4  # three examples misclassified before any attack
    outcome = cert.certify(model, (x, y), [0.08], bound="crown", enumeration_limit=2**6, max_domains=200)["outcomes"][0]
    broken = np.flatnonzero(outcome.status == "broken")
    assert list(outcome.method[broken[:3]]) == ["clean"] * 3
    assert {"enumeration", "branch_and_bound"} & set(outcome.method[broken[3:]]), "the test needs broken by search"
    assert sorted(outcome.counterexamples) == broken.tolist()
    discretization = bounds.discretization_layer(model)
    low, high = (v.numpy() for v in bounds.level_box(discretization, x, 0.08))
    for i, found in outcome.counterexamples.items():
        seen = ops.discretize(tf.constant(found[None]), discretization.bits, discretization.mode).numpy()[0]
        assert np.all(low[i] - 1e-6 <= seen) and np.all(seen <= high[i] + 1e-6)
        assert np.argmax(model(found[None], training=False)) != y[i]


def test_a_certified_report_repeats_the_plain_report_and_attacks_only_what_is_left(trained_2bit_fcn):
    model, (x, y) = trained_2bit_fcn
    eps = [0.02, 0.05, 0.1]
    plain = evaluation.RobustnessReport(model, ("fgsm",))((x, y), eps, survivors=True)
    found = evaluation.robustness_report(model, (x, y), eps, attacks=("fgsm",), certify="crown-refined")
    skipped = found["certification"]["skipped"]
    assert 0 < skipped < len(y), "the test needs examples certified at every ε and examples left"
    assert found["examples"] == len(y)
    assert found["clean_accuracy"] == pytest.approx(plain["clean_accuracy"])
    # FGSM is deterministic: a certified example survives it, so skipping it changes no accuracy.
    np.testing.assert_allclose(found["attacks"]["fgsm"]["accuracy"], plain["attacks"]["fgsm"]["accuracy"])
    np.testing.assert_allclose(found["worst_case"]["accuracy"], plain["worst_case"]["accuracy"])
    alone = cert.certify(model, (x, y), eps, bound="crown-refined")
    assert found["certified"]["accuracy"] == alone["certified"]
    for i in range(len(eps)):
        assert found["certified"]["accuracy"][i] <= found["worst_case"]["accuracy"][i]
        assert found["gap"][i] == pytest.approx(found["worst_case"]["accuracy"][i] - found["certified"]["accuracy"][i])
    assert all(c["check"] != "nonzero_gradients" or c["passed"] for c in found["checks"])
    lines = evaluation.report_lines(found)
    assert "certified" in lines[0] and "gap" in lines[0]
    assert f"The attacks ran on the {len(y) - skipped} examples" in "\n".join(lines)
    with_survivors = cert.certified_report(model, (x, y), eps, ("fgsm",), survivors=True)
    np.testing.assert_array_equal(with_survivors["survivors"], plain["survivors"])


def test_a_report_whose_examples_are_all_certified_runs_no_attack(trained_2bit_fcn):
    model, (x, y) = trained_2bit_fcn
    right = np.argmax(model(tf.constant(x), training=False), -1) == y
    found = evaluation.robustness_report(model, (x[right], y[right]), [0.0], attacks=("fgsm", "autoattack"),
                                         version="fast", certify="ibp")
    assert found["certification"]["skipped"] == found["examples"] == right.sum()
    assert found["certified"]["accuracy"] == [1.0] and found["worst_case"]["accuracy"] == [1.0]
    assert found["attacks"]["autoattack"]["after"] == {"apgd-ce": [1.0], "apgd-dlr": [1.0]}
    assert found["checks"] == [] and found["gap"] == [0.0]


def test_an_attack_that_breaks_a_certified_example_is_reported_as_a_bug(trained_2bit_fcn, monkeypatch):
    model, (x, y) = trained_2bit_fcn
    real = cert.certify

    def unsound(*args, **kwargs):  # nothing decided at ε=0, everything "certified" at ε=0.3
        found = real(*args, **kwargs)
        found["outcomes"][0].status[:], found["outcomes"][1].status[:] = "unknown", "certified"
        return found

    monkeypatch.setattr(cert, "certify", unsound)
    with pytest.raises(RuntimeError, match=r"certified at ε=0.3 but an attack broke it: the certification is unsound"):
        cert.certified_report(model, (x, y), [0.0, 0.3], ("fgsm",), bound="ibp")


@pytest.mark.parametrize("certify, message", [
    ("milp", "Unknown bound 'milp'"),
    ("ibp", "has 0 InputDiscretization layers; certification needs exactly one")])
def test_a_certified_report_names_what_it_cannot_do(certify, message):
    model = tf.keras.Sequential([tf.keras.layers.Flatten(input_shape=(28, 28, 1)), tf.keras.layers.Dense(10)])
    with pytest.raises(ValueError, match=message):
        evaluation.robustness_report(model, (random_images("fcn2", 2), np.zeros(2, int)), [0.1], attacks=("fgsm",),
                                     certify=certify)
