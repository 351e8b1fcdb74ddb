"""CIFAR-100: ResNet-20 (the study used XNOR precision), 164 epochs.

    python experiments/cifar100.py --xnor --input_bits=2
"""

from absl import app

import common

if __name__ == "__main__":
    common.define_flags("cifar100")
    app.run(common.main)
