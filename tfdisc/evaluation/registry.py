"""The attacks tfdisc evaluates with: one registry entry each, with what kind of attack it is.

An entry's `make(model, settings)` returns `fn(x, y, eps, fgsm_direction) -> x_adv` in [0, 1]
(`eps` a tensor; `fgsm_direction` is sign(∇x L) when the caller has it, else None). Evaluation
(`tfdisc.evaluation`) and deployment (`tfdisc.deployed`) read the categories from here: white-box
attacks follow gradients (and can be crafted on a model's twin and transferred), iterative ones are
worth compiling with XLA, and the masking checks compare white-box against the others.
"""

import dataclasses
from typing import Callable, Iterable

import tensorflow as tf

from tfdisc import attacks
from tfdisc.evaluation import discrete
from tfdisc.models import without_discretization


@dataclasses.dataclass(frozen=True)
class Settings:
    """How the attacks run: PGD steps, restarts (PGD and standalone APGD), Square's queries and first square
    share, the seed, the number of classes (APGD-T's targets) and the transfer attack's surrogate."""

    pgd_steps: int = 20
    restarts: int = 5
    square_queries: int = 1000
    square_p_init: float = 0.05
    seed: int = 0
    num_classes: int = 10
    apgd_target_classes: int = 9
    surrogate: object = None


@dataclasses.dataclass(frozen=True)
class Attack:
    """One attack: its name, how to make it, and its kind."""

    name: str
    make: Callable[[object, Settings], Callable]
    white_box: bool  # follows the model's gradients
    iterative: bool  # many forward/backward passes (worth XLA)
    description: str


def _fgsm(model, settings):
    def fgsm(x, y, eps, direction):
        if direction is None:
            return attacks.fast_gradient_method(model, x, eps, y=y)
        return x + eps * direction  # the direction is shared across ε
    return fgsm


def _pgd(model, s):
    return lambda x, y, eps, _: attacks.projected_gradient_descent(
        model, x, eps, 2.5 * eps / s.pgd_steps, s.pgd_steps, y=y, seed=s.seed, n_restarts=s.restarts)


def _apgd(loss, targeted=False):
    def make(model, s):
        targets = min(s.apgd_target_classes, s.num_classes - 1) if targeted else None
        options = {"n_target_classes": targets} if targeted else {"n_restarts": s.restarts}
        return lambda x, y, eps, _: attacks.apgd(model, x, eps, y=y, loss=loss, targeted=targeted, seed=s.seed,
                                                 **options)
    return make


def _square(model, s):
    return lambda x, y, eps, _: attacks.square_attack(model, x, eps, y=y, n_queries=s.square_queries,
                                                      p_init=s.square_p_init, seed=s.seed)


def _discrete(model, s):
    plain = without_discretization(model)
    return lambda x, y, eps, _: discrete.discrete_search(model, x, eps, y, plain=plain)


def _transfer(model, s):
    if s.surrogate is None:
        raise ValueError("The transfer attack needs a surrogate model (e.g. a full-precision 8-bit model's SavedModel).")
    return lambda x, y, eps, _: attacks.transfer_attack(s.surrogate, x, eps, y=y)


ATTACKS = {attack.name: attack for attack in (
    Attack("fgsm", _fgsm, True, False, "FGSM, one step of ε·sign(∇x L)"),
    Attack("pgd", _pgd, True, True, "PGD: random start, `pgd_steps` steps of 2.5·ε/steps, `restarts` restarts"),
    Attack("apgd-ce", _apgd("ce"), True, True, "Auto-PGD on cross-entropy, 100 iterations"),
    Attack("apgd-dlr", _apgd("dlr"), True, True, "Auto-PGD on the DLR loss, 100 iterations"),
    Attack("apgd-t", _apgd("dlr", targeted=True), True, True, "targeted Auto-PGD on DLR, 9 target classes"),
    Attack("square", _square, False, True, "Square Attack: gradient-free, scores only, `square_queries` queries"),
    Attack("transfer", _transfer, False, False, "FGSM crafted on a surrogate model, evaluated on this one"),
    Attack("discrete", _discrete, False, True, "greedy search over the discretized levels, exact forward passes "
           "(models that discretize their input)"),
)}
# AutoAttack (Croce & Hein 2020) as a cascade: each stage attacks only the examples that survived the ones before.
# "standard+discrete" adds the search in the discretized space as a last stage, for the survivors of the others.
AUTOATTACK_VERSIONS = {"standard": ("apgd-ce", "apgd-t", "square"), "fast": ("apgd-ce", "apgd-dlr"),
                       "standard+discrete": ("apgd-ce", "apgd-t", "square", "discrete")}
AUTOATTACK_SETTINGS = {"apgd_iterations": 100, "apgd_restarts": 1, "apgd_target_classes": 9, "square_queries": 5000,
                       "square_p_init": 0.8}
NAMES = (*ATTACKS, "autoattack")  # what a report can run
DEFAULT = ("fgsm", "pgd", "autoattack")


def names(kind: str) -> tuple:
    """The registered attacks of a kind: "white_box", "black_box" (the others) or "iterative"."""
    if kind == "black_box":
        return tuple(name for name, a in ATTACKS.items() if not a.white_box)
    return tuple(name for name, a in ATTACKS.items() if getattr(a, kind))


def check_names(requested: str | Iterable[str]) -> tuple:
    """`requested` (a name or names) as a tuple of known attack names; ValueError listing the valid ones."""
    requested = (requested,) if isinstance(requested, str) else tuple(requested)
    unknown = [a for a in requested if a not in NAMES]
    if unknown or not requested:
        raise ValueError(f"Unknown attack(s) {unknown}; valid values are {', '.join(map(repr, NAMES))}.")
    return requested


def clipped(name: str, model: tf.keras.Model, settings: Settings) -> Callable:
    """The attack `name` on `model` as fn(x, y, eps, direction), its result clipped to [0, 1]."""
    attack = ATTACKS[name].make(model, settings)
    return lambda x, y, eps, direction: tf.clip_by_value(attack(x, y, eps, direction), 0.0, 1.0)
