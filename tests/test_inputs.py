"""The bad-input matrix: every case on every execution path ends in one clear error (or a documented NaN)."""

import numpy as np
import pytest
import tensorflow as tf

from helpers import require_data
from tfdisc import attacks, checks, datasets, evaluation, export, models
from tfdisc import eps as eps_lib
from tfdisc.training import AdversarialModel

RANGE = r"Float pixels must lie in \[0, 1\]"
NAN = "Pixels contain .*NaN"
DTYPE = "Pixels must be uint8 0..255 or float in"
LABELS = r"Labels must be int class ids in 0..4 \(the model has 5 outputs\)"


def _batch():
    rng = np.random.default_rng(0)
    return rng.random((8, 28, 28, 1)).astype(np.float32), rng.integers(0, 5, 8)


# case: (images, labels) made from a valid batch, and the message every path must give.
CASES = {
    "pixels_0_255": (lambda x, y: (x * 255, y), RANGE),
    "pixels_negative": (lambda x, y: (x - 0.5, y), RANGE),
    "pixels_nan": (lambda x, y: (np.where(x > 0.9, np.nan, x).astype(np.float32), y), NAN),
    "pixels_int32": (lambda x, y: ((x * 255).astype(np.int32), y), DTYPE),
    "wrong_shape": (lambda x, y: (x[:, :20], y), "incompatible|expected shape|takes images of shape"),
    "labels_out_of_range": (lambda x, y: (x, y + 5), LABELS),
    "labels_negative": (lambda x, y: (x, y - 5), LABELS),
}
PATHS = ("eager", "graph", "xla", "saved_model", "tflite", "lce")
NOT_APPLICABLE = {(labels, flatbuffer) for labels in ("labels_out_of_range", "labels_negative")
                  for flatbuffer in ("tflite", "lce")}  # a flatbuffer takes no labels


@pytest.fixture(scope="module")
def exported(tmp_path_factory):
    """A 5-class model, its SavedModel, and its TFLite and LCE flatbuffers."""
    tf.keras.utils.set_random_seed(0)
    model = models.build_model("fcn2", width=16, depth=1, input_bits=2, num_classes=5)
    folder = tmp_path_factory.mktemp("exported")
    model.save(str(folder / "saved_model"))
    export.to_tflite(model, folder / "tflite.tflite")
    export.to_lce(model, folder / "lce.tflite")
    return model, folder


def _use(path, model, folder, x, y, *also_predict):
    """Run the model on (x, y) as `path` does: fit, evaluate, predict (or inference only); predictions of each input."""
    if path in ("tflite", "lce"):
        runner = export.TFLiteModel(folder / f"{path}.tflite")
        return [runner(z) for z in (x, *also_predict)]
    if path == "saved_model":
        model = models.load(str(folder / "saved_model"))
    model.compile("adam", tf.keras.losses.SparseCategoricalCrossentropy(from_logits=True),
                  run_eagerly=path == "eager", jit_compile=path == "xla")
    model.fit(x, y, batch_size=4, verbose=0)
    model.evaluate(x, y, verbose=0)
    return [model.predict(z, verbose=0) for z in (x, *also_predict)]


@pytest.mark.parametrize("path", PATHS)
@pytest.mark.parametrize("case", list(CASES))
def test_bad_model_input_fails_clearly_on_every_path(exported, case, path):
    if (case, path) in NOT_APPLICABLE:
        pytest.skip("not applicable: " + case + " on " + path)
    model, folder = exported
    make, message = CASES[case]
    x, y = make(*_batch())
    with pytest.raises(ValueError, match=message) as raised:
        _use(path, model, folder, x, y)
    assert "Traceback" not in str(raised.value) and len(str(raised.value)) < 400


@pytest.mark.parametrize("path", PATHS)
def test_valid_input_runs_on_every_path_and_uint8_is_scaled(exported, path):
    model, folder = exported
    x, y = _batch()
    as_uint8 = np.round(x * 255).astype(np.uint8)
    from_uint8, from_float = _use(path, model, folder, as_uint8, y, as_uint8 / 255.0)
    assert np.isfinite(from_uint8).all()
    np.testing.assert_allclose(from_uint8, from_float, atol=1e-5)


def test_raw_savedmodel_signature_fails_on_bad_pixels(exported):
    _, folder = exported
    serve = tf.saved_model.load(str(folder / "saved_model")).signatures["serving_default"]
    x, _ = _batch()
    assert np.isfinite(next(iter(serve(pixels=tf.constant(x)).values())).numpy()).all()
    with pytest.raises(tf.errors.InvalidArgumentError, match=RANGE):
        serve(pixels=tf.constant(x * 255))


def test_user_compiled_xla_turns_bad_input_into_nan(exported):
    """Inside XLA no error can be raised: the documented conversion is NaN, never a plausible answer."""
    model, _ = exported
    x, _ = _batch()
    x[0] *= 255
    logits = tf.function(lambda z: model(z, training=False), jit_compile=True)(x).numpy()
    assert np.isnan(logits[0]).all() and np.isfinite(logits[1:]).all()
    fgsm = tf.function(lambda z, eps: attacks.fast_gradient_method(model, z, eps), jit_compile=True)
    assert np.isnan(fgsm(x[1:], tf.constant(1.5)).numpy()).all()
    assert np.isfinite(fgsm(x[1:], tf.constant(0.1)).numpy()).all()


def test_user_compiled_xla_turns_bad_input_into_nan_in_a_bnn_too():
    """A sign would turn NaN activations back into ±1; the model marks bad examples again on its logits."""
    model = models.build_model("fcn2", precision="bnn", width=16, depth=2, input_bits=2, num_classes=5)
    x, _ = _batch()
    x[0] *= 255
    logits = tf.function(lambda z: model(z, training=False), jit_compile=True)(x).numpy()
    assert np.isnan(logits[0]).all() and np.isfinite(logits[1:]).all()


BUDGET = r"must be a finite L∞ budget in \[0, 1\]"


@pytest.mark.parametrize("name, eps, alpha", [("eps", 1.5, 0.0), ("eps", -0.1, 0.0), ("eps", float("nan"), 0.0),
                                              ("alpha", 0.1, -0.1), ("alpha", 0.1, float("inf"))])
@pytest.mark.parametrize("path", ["eager", "graph"])
def test_bad_budgets_fail_clearly_in_eager_and_graph_attacks(exported, name, eps, alpha, path):
    model, _ = exported
    x, y = _batch()
    attack = lambda e, a: attacks.random_fgsm(model, x, e, a, y=y, seed=0)  # noqa: E731
    if path == "eager":
        with pytest.raises(ValueError, match=f"{name} {BUDGET}"):
            attack(eps, alpha)
    else:
        with pytest.raises(tf.errors.InvalidArgumentError, match=f"{name} {BUDGET}"):
            tf.function(attack)(tf.constant(eps), tf.constant(alpha))


@pytest.mark.parametrize("make, message", [
    (lambda m: AdversarialModel(m, eps=1.5), r"eps .* must be in \[0, 1\]"),
    (lambda m: AdversarialModel(m, eps=0.1, alpha=0.2), r"alpha .* must be in \[0, 0.1\]"),
    (lambda m: AdversarialModel(m, eps=0.1, adv_ratio=0), r"adv_ratio .* must be in \(0, 1\]"),
    (lambda m: models.build_model("fcn2", input_bits=0), "bits must be an int in 1..8"),
    (lambda m: models.build_model("fcn2", input_bits=9), "bits must be an int in 1..8"),
    (lambda m: models.build_model("vgg16"), "Unknown arch 'vgg16'; valid values are 'fcn1', 'fcn2'"),
    (lambda m: models.build_model("fcn2", precision="ternary"), "Unknown precision 'ternary'; valid values are"),
    (lambda m: evaluation.sweep(m, _batch(), [0.1, 1.5]), r"eps values must be finite numbers in \[0, 1\]"),
    (lambda m: evaluation.sweep(m, _batch(), [float("nan")]), r"eps values must be finite numbers in \[0, 1\]"),
    (lambda m: eps_lib.parse("0,1/0"), "Cannot read eps '1/0'"),
    (lambda m: evaluation.sweep(m, _batch(), "0.1"), "eps_values must be a list of numbers, not the string"),
    (lambda m: eps_lib.values([]), "The list of eps values is empty"),
    (lambda m: evaluation.sweep(m, (_batch()[0] * 255, _batch()[1]), [0.1]), RANGE),
    (lambda m: evaluation.sweep(m, tf.data.Dataset.from_tensor_slices(_batch()).batch(4).map(
        lambda x, y: (x * 255, y)), [0.1]), RANGE),
    (lambda m: evaluation.sweep(m, tf.data.Dataset.from_tensor_slices((_batch()[0], _batch()[1] + 5)).batch(4),
                                [0.1]), LABELS),
])
def test_bad_arguments_fail_clearly(exported, make, message):
    with pytest.raises(ValueError, match=message):
        make(exported[0])


@pytest.mark.parametrize("content, message", [
    (b"", "is not a readable .npz archive"),
    (b"PK\x03\x04 truncated", "is not a readable .npz archive"),
    (b"not a zip file at all", "is not a readable .npz archive"),
])
def test_broken_data_files_are_named(tmp_path, content, message):
    (tmp_path / "mnist.npz").write_bytes(content)
    with pytest.raises(ValueError, match=f"{tmp_path / 'mnist.npz'} {message}"):
        datasets.load_arrays("mnist", "test", data_dir=str(tmp_path))


def test_a_truncated_real_archive_is_named(tmp_path):
    real = require_data().read_bytes()
    (tmp_path / "mnist.npz").write_bytes(real[: len(real) // 2])
    with pytest.raises(ValueError, match="may be truncated or corrupt"):
        datasets.load_arrays("mnist", "test", data_dir=str(tmp_path))


def test_a_missing_data_folder_fails_at_once_without_creating_it(tmp_path):
    missing = tmp_path / "dtaa"
    with pytest.raises(datasets.DataNotFoundError, match="does not exist"):
        datasets.load_arrays("mnist", "test", data_dir=str(missing))
    assert not missing.exists()


def test_invalid_input_error_is_a_value_error():
    assert issubclass(checks.InvalidInputError, ValueError)
