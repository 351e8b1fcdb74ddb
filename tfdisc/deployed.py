"""Robustness of a deployed flatbuffer, measured beside its Keras twin.

A flatbuffer has no gradients, so its attacker either queries it (the score-based Square Attack,
run here against the interpreter itself) or crafts adversarial examples on the Keras twin and sends
them over (transfer of FGSM, PGD and APGD). For each attack and ε the report gives the twin's own
accuracy and the deployed model's; a deployed model more than `tolerance` below its twin under the
same attack is listed in `less_robust`, which the scripts print loudly.
"""

from typing import Callable, Sequence

import numpy as np
import tensorflow as tf

from tfdisc import attacks, checks, eps as eps_lib
from tfdisc.evaluation import registry
from tfdisc.evaluation.data import as_dataset
from tfdisc.progress import Progress
from tfdisc.types import Data, EpsValues

# Crafted on the Keras twin and sent over: the registry's white-box attacks; queried directly: its score-based one.
TRANSFERRED = ("fgsm", "pgd", "apgd-ce")
ATTACKS = TRANSFERRED + ("square",)


def _crafters(twin, names, pgd_steps, seed):
    """{name: compiled fn(x, y, eps) -> x_adv} crafted on `twin` (one restart each, as an attacker would start)."""
    settings = registry.Settings(pgd_steps=pgd_steps, restarts=1, seed=seed, num_classes=int(twin.output_shape[-1]))
    return {name: tf.function(lambda x, y, eps, fn=registry.clipped(name, twin, settings): fn(x, y, eps, None),
                              reduce_retracing=True) for name in names}


def deployed_report(deployed: Callable[[np.ndarray], np.ndarray], twin: tf.keras.Model, data: Data,
                    eps_values: EpsValues, attack_names: Sequence[str] = ATTACKS, *, pgd_steps: int = 20,
                    square_queries: int = 1000, seed: int = 0, tolerance: float = 0.01) -> dict:
    """Accuracy per attack and ε of `deployed` (a `tfdisc.export.TFLiteModel`) beside its Keras `twin`.

    `data`: (x, y) arrays or a dataset of batches. "square" runs against each model on its own;
    the others are crafted on `twin` (white-box, straight-through gradients) and evaluated on both.
    """
    eps_values = eps_lib.values(eps_values)
    unknown = [name for name in attack_names if name not in ATTACKS]
    if unknown or not attack_names:
        raise ValueError(f"Unknown attack(s) {unknown} for a deployed model; valid values are {list(ATTACKS)} "
                         "(a flatbuffer has no gradients: the others are crafted on its Keras twin).")
    crafters = _crafters(twin, [name for name in attack_names if name in TRANSFERRED], pgd_steps, seed)
    square_on_twin = tf.function(lambda x, y, eps: attacks.square_attack(twin, x, eps, y=y, n_queries=square_queries,
                                                                          seed=seed), reduce_retracing=True)
    query_deployed = lambda x: tf.constant(deployed(x.numpy()))  # noqa: E731  (the interpreter, from eager code)
    correct = {name: np.zeros((2, len(eps_values))) for name in attack_names}
    clean, examples = np.zeros(2), 0
    data = as_dataset(data)
    batches = int(data.cardinality())
    progress, done = Progress("deployed report", batches if batches > 0 else None), 0
    for x, y in data:
        x, y = checks.pixels(x), tf.cast(y, tf.int64)
        clean += [_hits(twin(x, training=False), y), _hits(deployed(x.numpy()), y)]
        for j, eps in enumerate(eps_values):
            eps_t = tf.constant(eps, tf.float32)
            for name, craft in crafters.items():
                x_adv = craft(x, y, eps_t)
                correct[name][:, j] += [_hits(twin(x_adv, training=False), y), _hits(deployed(x_adv.numpy()), y)]
            if "square" in attack_names:
                x_deployed = attacks.square_attack(query_deployed, x, eps_t, y=y, n_queries=square_queries, seed=seed)
                correct["square"][:, j] += [_hits(twin(square_on_twin(x, y, eps_t), training=False), y),
                                            _hits(deployed(x_deployed.numpy()), y)]
        examples, done = examples + int(tf.size(y)), done + 1
        progress.update(done)
    progress.update(done, final=True)
    if examples == 0:
        raise ValueError("The data holds no examples.")
    report = {"eps": list(map(float, eps_values)), "examples": examples, "seconds": progress.elapsed,
              "clean_accuracy": {"keras": clean[0] / examples, "deployed": clean[1] / examples},
              "attacks": {name: {"keras": list(c[0] / examples), "deployed": list(c[1] / examples),
                                 "crafted_on": "keras twin" if name in TRANSFERRED else "each model itself"}
                          for name, c in correct.items()},
              "settings": {"pgd_steps": pgd_steps, "square_queries": square_queries, "seed": seed,
                           "tolerance": tolerance}}
    report["less_robust"] = [{"attack": name, "eps": eps, "keras": acc["keras"][j], "deployed": acc["deployed"][j]}
                             for name, acc in report["attacks"].items() for j, eps in enumerate(report["eps"])
                             if acc["deployed"][j] < acc["keras"][j] - tolerance]
    return report


def report_lines(report: dict) -> list[str]:
    """The deployed report as text: Keras / deployed accuracy per attack and ε, then any loud warning."""
    names = list(report["attacks"])
    clean = report["clean_accuracy"]
    lines = [f"clean: keras {clean['keras']:.4f}, deployed {clean['deployed']:.4f} ({report['examples']} examples)",
             f"{'eps':>8}" + "".join(f"  {name + ' keras/deployed':>26}" for name in names)]
    for j, eps in enumerate(report["eps"]):
        lines.append(f"{eps:8.4f}" + "".join(
            f"  {report['attacks'][n]['keras'][j]:12.4f} /{report['attacks'][n]['deployed'][j]:10.4f}" for n in names))
    lines.append("  fgsm, pgd, apgd-ce: crafted on the Keras twin, evaluated on both; square: run against each model.")
    for worse in report["less_robust"]:
        lines.append(f"  WARNING: THE DEPLOYED MODEL IS LESS ROBUST than its Keras twin under {worse['attack']} at "
                     f"eps={worse['eps']:g}: {worse['deployed']:.4f} against {worse['keras']:.4f}.")
    return lines


def _hits(logits, y):
    return int(np.sum(np.argmax(np.asarray(logits), axis=-1) == np.asarray(y)))
