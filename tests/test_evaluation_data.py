"""tfdisc.evaluation.data: evaluation batches and data coercion."""

import numpy as np
import pytest

from tfdisc import evaluation, models


@pytest.mark.isolated  # builds CIFAR AlexNet-BNN (52 M parameters)
def test_evaluation_batches_are_as_large_as_the_memory_budget_allows():
    fcn = models.build_model("fcn2", width=64, depth=2)
    assert evaluation.batch_size_for(fcn) == 1000  # the cap
    conv = models.build_model("alexnet", precision="bnn")
    floats = sum(int(np.prod(layer.output_shape[1:])) for layer in conv.layers[1:]) + 32 * 32 * 3
    assert evaluation.batch_size_for(conv) == 2**30 // (8 * floats) < 1000
    assert evaluation.batch_size_for(conv, memory_bytes=1) == 1
