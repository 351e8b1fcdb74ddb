"""tfdisc.steps: every batch checked before a step core that may be compiled with XLA."""

import numpy as np
import pytest
import tensorflow as tf

from tfdisc import checks, models


@pytest.mark.parametrize("jit_compile", [False, True])
def test_fit_evaluate_and_predict_check_each_batch_on_both_paths(mnist_small, jit_compile):
    x, y, _, _ = mnist_small
    model = models.build_model("fcn2", width=16, depth=1)
    model.compile("adam", tf.keras.losses.SparseCategoricalCrossentropy(from_logits=True), jit_compile=jit_compile)
    assert model.xla_compiled == jit_compile and not model.jit_compile  # the checked step itself is not XLA
    model.fit(x[:100], y[:100], batch_size=50, verbose=0)
    assert list(model._xla_cores or {}) == (["train_core"] if jit_compile else [])
    for call in (lambda: model.fit(x[:100] * 255, y[:100], verbose=0), lambda: model.evaluate(x[:100] * 255, y[:100],
                                                                                               verbose=0),
                 lambda: model.predict(np.full((4, 28, 28, 1), np.nan, np.float32), verbose=0)):
        with pytest.raises(checks.InvalidInputError, match="Float pixels must lie in|Pixels contain"):
            call()


def test_uint8_batches_are_scaled_before_the_step(mnist_small):
    x, _, _, _ = mnist_small
    model = models.build_model("fcn2", width=16, depth=1)
    model.compile("adam", tf.keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    as_uint8 = np.round(x[:8] * 255).astype(np.uint8)
    np.testing.assert_allclose(model.predict(as_uint8, verbose=0), model.predict(x[:8], verbose=0), atol=1e-6)
