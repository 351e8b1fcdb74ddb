"""tfdisc.scan: what a SavedModel would run, found without loading it."""

import pytest
import tensorflow as tf

from tfdisc import models, scan


def test_the_allow_list_holds_keras_larq_and_tfdisc_classes_but_no_lambda():
    allowed = scan.allowed_classes()
    assert {"Dense", "BatchNormalization", "QuantDense", "QuantConv2D", "SteSign", "tfdisc>InputDiscretization",
            "Functional"} <= allowed
    assert "Lambda" not in allowed


def test_a_tfdisc_model_has_nothing_untrusted(tmp_path):
    models.build_model("fcn2", precision="xnor", width=8, depth=2).save(str(tmp_path / "m"))
    assert scan.untrusted_parts(str(tmp_path / "m")) == []


def test_a_corrupt_saved_model_is_named(tmp_path):
    models.build_model("fcn2", width=8, depth=1).save(str(tmp_path / "m"))
    (tmp_path / "m" / "saved_model.pb").write_bytes(b"\x0a\xff\xffnot a protocol buffer")
    with pytest.raises(ValueError, match="is not a readable SavedModel .* Export it again"):
        scan.untrusted_parts(str(tmp_path / "m"))


def test_file_ops_in_a_function_library_are_found(tmp_path):
    model = tf.keras.Sequential([tf.keras.Input((2,)), tf.keras.layers.Dense(1)])

    @tf.function(input_signature=[tf.TensorSpec([None, 2])])
    def serve(x):
        tf.print(tf.io.read_file("/etc/hostname"))
        return model(x)

    model.save(str(tmp_path / "m"), signatures={"serving_default": serve})
    assert scan.untrusted_parts(str(tmp_path / "m")) == [
        "op PrintV2 (on TensorFlow's deny list for untrusted SavedModels)",
        "op ReadFile (on TensorFlow's deny list for untrusted SavedModels)"]
