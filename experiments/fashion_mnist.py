"""Fashion-MNIST with the MNIST setups (FCN1/FCN2); Debian's dataset-fashion-mnist is found automatically.

    python experiments/fashion_mnist.py --arch=fcn2 --bnn --input_bits=2
"""

from absl import app

import common

if __name__ == "__main__":
    common.define_flags("fashion_mnist")
    app.run(common.main)
