"""ImageNet (ILSVRC 2012): AlexNet as in XNOR-Net, 50 epochs; TFDS reads the manual download.

    python experiments/imagenet.py --xnor --input_bits=2 --data_dir=/data/tfds
"""

from absl import app

import common

DEFAULTS = dict(dataset="imagenet2012", arch="alexnet_imagenet", sweep_eps=common.CIFAR_EPS, adv_eps=16 / 255,
                adv_alpha=8 / 255, batch_size=256, learning_rate=1e-3)

if __name__ == "__main__":
    common.define_flags(**DEFAULTS)
    app.run(common.main)
