"""MNIST: FCN1 (784-6144×4-10, 20 epochs) and FCN2 (784-600×4-10, 10 epochs) as in the study.

    python experiments/mnist.py --arch=fcn1 --bnn --input_bits=2
"""

from absl import app

import common

if __name__ == "__main__":
    common.define_flags("mnist")
    app.run(common.main)
