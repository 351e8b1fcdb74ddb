"""CIFAR-10: AlexNet in the BinaryNet.pytorch style (BNN widths ×3), 40 epochs.

    python experiments/cifar10.py --bnn --input_bits=2
"""

from absl import app

import common

if __name__ == "__main__":
    common.define_flags("cifar10")
    app.run(common.main)
