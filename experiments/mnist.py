"""MNIST: FCN1 (784-6144×4-10, 20 epochs) and FCN2 (784-600×4-10, 10 epochs), as in the study.

    python experiments/mnist.py --arch=fcn2 --bnn --input_bits=2 --data_dir=../shared/data
    python experiments/mnist.py --arch=fcn1 --bnn --input_bits=2 --data_dir=../shared/data

What a run writes, and how to resume it: docs/experiments.md.
"""

from tfdisc import cli

if __name__ == "__main__":
    cli.run_experiment("mnist")
