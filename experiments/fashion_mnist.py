"""Fashion-MNIST with the MNIST setups (FCN1/FCN2); Debian's dataset-fashion-mnist is found automatically.

    python experiments/fashion_mnist.py --arch=fcn2 --bnn --input_bits=2

What a run writes, and how to resume it: docs/experiments.md.
"""

from tfdisc import cli

if __name__ == "__main__":
    cli.run_experiment("fashion_mnist")
