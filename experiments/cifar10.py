"""CIFAR-10: AlexNet in the BinaryNet.pytorch style (BNN widths ×3), 40 epochs.

    python experiments/cifar10.py --bnn --input_bits=2
"""

from absl import app

import common

DEFAULTS = dict(dataset="cifar10", arch="alexnet", sweep_eps=common.CIFAR_EPS, adv_eps=8 / 255, adv_alpha=4 / 255,
                batch_size=128)

if __name__ == "__main__":
    common.define_flags(**DEFAULTS)
    app.run(common.main)
