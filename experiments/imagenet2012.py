"""ImageNet (ILSVRC 2012): AlexNet as in XNOR-Net, 50 epochs; TFDS reads the manual download.

    python experiments/imagenet2012.py --xnor --input_bits=2 --data_dir=/data/tfds
"""

from absl import app

import common

if __name__ == "__main__":
    common.define_flags("imagenet2012")
    app.run(common.main)
