"""Fashion-MNIST with the MNIST setups (FCN1/FCN2); Debian's dataset-fashion-mnist is found automatically.

    python experiments/fashion_mnist.py --arch=fcn2 --bnn --input_bits=2
"""

from absl import app

import common

DEFAULTS = dict(dataset="fashion_mnist", arch="fcn2", sweep_eps=common.MNIST_EPS, adv_eps=0.1, adv_alpha=0.05,
                batch_size=100)

if __name__ == "__main__":
    common.define_flags(**DEFAULTS)
    app.run(common.main)
