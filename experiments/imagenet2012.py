"""ImageNet (ILSVRC 2012): AlexNet as in XNOR-Net, 50 epochs; TFDS reads the manual download.

    python experiments/imagenet2012.py --xnor --input_bits=2 --data_dir=/data/tfds

What a run writes, and how to resume it: docs/experiments.md.
"""

from tfdisc import cli

if __name__ == "__main__":
    cli.run_experiment("imagenet2012")
