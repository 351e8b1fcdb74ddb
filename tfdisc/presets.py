"""One registry entry per data set: every fact the library, the experiments and the reports need.

A new data set is one `Preset` here (plus its loader source, if TFDS does not have it). Epoch
budgets belong to architectures (`tfdisc.models.ARCHITECTURES`), since MNIST has two.
"""

import dataclasses


@dataclasses.dataclass(frozen=True)
class Preset:
    """Facts about one data set; ε values are L∞ budgets in [0, 1] pixel units."""

    image_shape: tuple
    num_classes: int
    arch: str  # default architecture
    sweep_eps: tuple  # the FGSM sweep grid
    report_eps: tuple  # the ε at which REPORT.md judges the study's claims
    adv_eps: float  # R-FGSM adversarial-training budget
    adv_alpha: float  # its random step
    large_eps: float  # accuracy should be near chance here (masking check)
    batch_size: int
    learning_rate: float = 1e-3
    idx_dirs: tuple = ()  # folders of MNIST-style idx .gz files, searched after data_dir
    in_memory: bool = True  # small enough to hold as arrays (exact, resumable shuffling)
    tfds_splits: tuple = ("train", "test")  # TFDS names of our "train" and "test"
    test_size: int = 10000  # examples in the whole test split


# Dense where the study's tables sit (its first two MNIST columns are most likely 0.05 and 0.1), then on to
# 0.5, where every model should be near chance (the masking check).
MNIST_EPS = (0.0, 0.01, 0.02, 0.03, 0.05, 0.075, 0.1, 0.15, 0.2, 0.25, 0.3, 0.4, 0.5)
CIFAR_EPS = (0.0, 1 / 255, 2 / 255, 3 / 255, 4 / 255, 8 / 255, 16 / 255, 32 / 255)  # every step up to 4/255

DATASETS = {
    "mnist": Preset((28, 28, 1), 10, "fcn2", MNIST_EPS, (0.1, 0.2, 0.3), 0.3, 0.15, 0.5, 100),
    "fashion_mnist": Preset((28, 28, 1), 10, "fcn2", MNIST_EPS, (0.1, 0.2, 0.3), 0.1, 0.05, 0.5, 100,
                            idx_dirs=("/usr/share/datasets/fashion-mnist",)),
    "cifar10": Preset((32, 32, 3), 10, "alexnet", CIFAR_EPS, (2 / 255, 8 / 255), 8 / 255, 4 / 255, 32 / 255, 128),
    "cifar100": Preset((32, 32, 3), 100, "resnet20", CIFAR_EPS, (2 / 255, 8 / 255), 8 / 255, 4 / 255, 32 / 255, 128),
    "imagenet2012": Preset((227, 227, 3), 1000, "alexnet_imagenet", CIFAR_EPS, (2 / 255, 8 / 255), 16 / 255,
                           8 / 255, 32 / 255, 256, in_memory=False, tfds_splits=("train", "validation"),
                           test_size=50000),
}


def get(name: str) -> Preset:
    """The preset of data set `name`; ValueError listing the known ones otherwise."""
    if name not in DATASETS:
        raise ValueError(f"Unknown dataset {name!r}; valid values are {', '.join(map(repr, DATASETS))}.")
    return DATASETS[name]
