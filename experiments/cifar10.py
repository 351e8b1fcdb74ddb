"""CIFAR-10: AlexNet in the BinaryNet.pytorch style (BNN widths ×3), 40 epochs.

    python experiments/cifar10.py --bnn --input_bits=2 --recipe=reference --data_dir=../shared/data

What a run writes, and how to resume it: docs/experiments.md.
"""

from tfdisc import cli

if __name__ == "__main__":
    cli.run_experiment("cifar10")
