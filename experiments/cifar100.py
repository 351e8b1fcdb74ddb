"""CIFAR-100: ResNet-20 (the study used XNOR precision), 164 epochs; TFDS prepares the data.

    python experiments/cifar100.py --xnor --input_bits=2 --data_dir=/data/tfds

What a run writes, and how to resume it: docs/experiments.md.
"""

from tfdisc import cli

if __name__ == "__main__":
    cli.run_experiment("cifar100")
