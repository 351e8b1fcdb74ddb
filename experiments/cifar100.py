"""CIFAR-100: ResNet-20 (the study used XNOR precision), 164 epochs.

    python experiments/cifar100.py --xnor --input_bits=2
"""

from absl import app

import common

DEFAULTS = dict(dataset="cifar100", arch="resnet20", sweep_eps=common.CIFAR_EPS, adv_eps=8 / 255, adv_alpha=4 / 255,
                batch_size=128)

if __name__ == "__main__":
    common.define_flags(**DEFAULTS)
    app.run(common.main)
