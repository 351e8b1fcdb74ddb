"""MNIST: FCN1 (784-6144×4-10, 20 epochs) and FCN2 (784-600×4-10, 10 epochs) as in the study.

    python experiments/mnist.py --arch=fcn1 --bnn --input_bits=2
"""

from absl import app

import common

DEFAULTS = dict(dataset="mnist", arch="fcn2", sweep_eps=common.MNIST_EPS, adv_eps=0.3, adv_alpha=0.15, batch_size=100)

if __name__ == "__main__":
    common.define_flags(**DEFAULTS)
    app.run(common.main)
