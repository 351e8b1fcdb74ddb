import logging

import larq as lq
import numpy as np
import pytest
import tensorflow as tf

from tfdisc import cpu, models, ops


@pytest.fixture
def mixed_bfloat16():
    cpu.set_policy("mixed_bfloat16")
    yield
    cpu.set_policy("float32")


def test_cpu_flags_come_from_cpuinfo(tmp_path):
    info = tmp_path / "cpuinfo"
    info.write_text("processor\t: 0\nflags\t\t: fpu sse2 avx2 amx_bf16\n\nprocessor\t: 1\nflags\t\t: fpu\n")
    assert cpu.cpu_flags(str(info)) == {"fpu", "sse2", "avx2", "amx_bf16"}
    assert cpu.cpu_flags(str(tmp_path / "missing")) == set()
    assert cpu.has_bfloat16({"avx512_bf16"}) and cpu.has_bfloat16({"amx_bf16"}) and not cpu.has_bfloat16({"avx2"})


def test_mixed_precision_only_where_the_cpu_has_bfloat16(caplog):
    with caplog.at_level(logging.WARNING, logger="tfdisc.cpu"):
        assert cpu.mixed_precision_policy(False, {"avx2"}) == "float32"
        assert cpu.mixed_precision_policy(True, {"avx512_bf16", "avx2"}) == "mixed_bfloat16"
        assert not caplog.records
        assert cpu.mixed_precision_policy(True, {"avx2"}) == "float32"
    assert len(caplog.records) == 1 and "no bfloat16 instructions" in caplog.records[0].getMessage()
    with pytest.raises(ValueError, match="Unknown policy 'float16'; valid values are 'float32', 'mixed_bfloat16'"):
        cpu.set_policy("float16")


def test_bnn_under_mixed_bfloat16_keeps_levels_signs_and_float32_logits(mixed_bfloat16):
    model = models.build_model("fcn2", precision="bnn", input_bits=2, width=32, depth=2)
    x = tf.random.stateless_uniform((16, 28, 28, 1), seed=(1, 2))
    discretized = model.get_layer("input_discretization")(x)
    assert discretized.dtype == tf.float32
    np.testing.assert_array_equal(discretized, ops.discretize(x, 2))
    assert model(x).dtype == tf.float32
    for layer in model.layers:
        if isinstance(layer, lq.layers.QuantDense):
            assert layer.compute_dtype == "bfloat16" and layer.kernel.dtype == tf.float32
            binary = layer.kernel_quantizer(tf.cast(layer.kernel, tf.bfloat16))  # what the layer multiplies by
            np.testing.assert_array_equal(tf.cast(binary, tf.float32), np.where(layer.kernel.numpy() >= 0, 1.0, -1.0))
    model.compile(tf.keras.optimizers.Adam(1e-3), tf.keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    history = model.fit(x, tf.range(16) % 10, epochs=2, verbose=0)
    assert all(np.isfinite(history.history["loss"]))
    assert all(np.all(np.abs(v.numpy()) <= 1) for v in model.trainable_variables if "kernel" in v.name)


def test_machine_names_the_cpu_model(tmp_path):
    info = tmp_path / "cpuinfo"
    info.write_text("processor\t: 0\nmodel name\t: AMD EPYC 7B13\nflags\t\t: fpu avx2\n")
    assert cpu.machine(str(info)).endswith(" CPU cores, AMD EPYC 7B13")
    assert cpu.machine(str(tmp_path / "missing")).endswith(" CPU cores, unknown CPU")
