"""The robustness report: every attack at every ε, AutoAttack's cascade, the per-example worst case and the
masking checks."""

import dataclasses
from typing import Sequence

import numpy as np
import tensorflow as tf

from tfdisc import attacks as attacks_lib
from tfdisc import checks, eps as eps_lib
from tfdisc.evaluation import masking, registry
from tfdisc.evaluation.checkpoint import ReportCheckpoint, batch_digest, model_digest
from tfdisc.evaluation.data import as_dataset, check_finite_logits, checked_batch, chunk_size, direction, zero_rows
from tfdisc.models import discretization_gradient, sync_quantized_kernels, with_input_gradient, with_quantized_kernels
from tfdisc.progress import Progress
from tfdisc.types import Data, EpsValues, Path


def _count(mask):
    return tf.reduce_sum(tf.cast(mask, tf.int64))


# Batch sizes XLA compiles for (steps of √2 from 32): survivor counts are padded up to the next one.
XLA_BATCH_SIZES = tuple(int(s) for s in np.unique(np.round(32 * np.sqrt(2) ** np.arange(30))))


def _with_xla(attack):
    """`attack` compiled with XLA on its batch padded (by repeating rows) to the next of `XLA_BATCH_SIZES`.

    Survivor counts are data-dependent, and XLA compiles once per shape: padding bounds the
    compilations to a few per attack. Rows are attacked independently, so padding changes no row's result
    beyond the random draws, which depend on the batch's shape on every path.
    """
    compiled = tf.function(lambda x, y, eps: attack(x, y, eps, None), jit_compile=True)
    sizes = tf.constant(XLA_BATCH_SIZES)

    def padded(x, y, eps, _):
        rows = tf.shape(x)[0]
        size = tf.gather(tf.concat([sizes, [rows]], 0), tf.searchsorted(sizes, [rows])[0])
        repeat = tf.math.floormod(tf.range(size), rows)
        return compiled(tf.gather(x, repeat), tf.gather(y, repeat), eps)[:rows]

    return padded


class RobustnessReport:
    """Accuracy under each attack and ε, the per-example worst case, and gradient-masking checks.

    attacks: any of `tfdisc.evaluation.registry.NAMES`. "fgsm"; "pgd" (L∞, `pgd_steps` steps of 2.5·ε/steps,
    random start, `pgd_restarts` restarts keeping each example's best); "apgd-ce", "apgd-dlr" (Auto-PGD, 100
    iterations, `pgd_restarts` restarts); "apgd-t" (targeted DLR, 9 targets); "square" (gradient-free,
    `square_queries`); "transfer" (FGSM crafted on `surrogate`, evaluated on the model) each run on
    every example. "autoattack" runs AutoAttack's cascade, each stage only on the examples still
    classified correctly: `version="standard"` is APGD-CE, APGD-T (9 targets), Square (5000 queries,
    p_init 0.8 as in the reference), all with one restart; `version="fast"` is APGD-CE then APGD-DLR.
    It leaves out the reference's FAB-T, which Croce & Hein report never lowers the standard version's robust
    accuracy by more than 0.1 points. The checks follow Carlini et al. 2019, plus a per-example one: examples that
    survive every gradient attack but fall to a gradient-free or transfer attack. A failed check is reported as
    possible gradient masking.

    `jit_compile=True` computes the iterative attacks' examples (the registry's iterative ones) with XLA: the same
    attacks with other random draws. Which examples survive is still decided in graph mode, as clean
    accuracy is, so XLA's fused arithmetic can change the attack's search but never the scoring. Off
    by default: it was no faster on FCN1-BNN (`scripts/benchmark.py --parts=report_xla`, README).

    Each batch is one compiled call covering every ε and attack (ε is a tensor: new ε never
    retrace); the object is reusable across data and ε, and across training of the model: each call
    attacks the model's current weights, binarized kernels quantized once per call
    (`tfdisc.models.with_quantized_kernels`). `gradient` sets how the model's input discretization
    passes gradients for this report only (see `FgsmSweep`).
    """

    def __init__(self, model, attacks=registry.DEFAULT, surrogate=None, *, version="standard", pgd_steps=20,
                 pgd_restarts=5, square_queries=1000, seed=0, gradient=None, jit_compile=False):
        attacks = registry.check_names(attacks)
        checks.choice("version", version, tuple(registry.AUTOATTACK_VERSIONS))
        checks.positive_int("pgd_steps", pgd_steps)
        checks.positive_int("pgd_restarts", pgd_restarts)
        checks.positive_int("square_queries", square_queries)
        if "transfer" in attacks and surrogate is None:
            raise ValueError("The transfer attack needs a surrogate model (e.g. a full-precision 8-bit model's "
                             "SavedModel).")
        self._latent = model if gradient is None else with_input_gradient(model, gradient)
        self.model = with_quantized_kernels(self._latent)  # refreshed from `_latent` on every call
        self.num_classes = int(self.model.output_shape[-1])
        self.attacks = attacks
        self.settings = {"pgd_steps": pgd_steps, "pgd_restarts": pgd_restarts, "square_queries": square_queries,
                         "transfer": "fgsm on surrogate" if "transfer" in attacks else None, "seed": seed,
                         "jit_compile": bool(jit_compile)}
        if "autoattack" in attacks:
            self.settings["autoattack"] = {"version": version, "stages": list(registry.AUTOATTACK_VERSIONS[version]),
                                           **registry.AUTOATTACK_SETTINGS}
        base = registry.Settings(pgd_steps=pgd_steps, seed=seed, num_classes=self.num_classes)
        standalone = dataclasses.replace(base, restarts=pgd_restarts, square_queries=square_queries,
                                         surrogate=surrogate)
        cascade = dataclasses.replace(base, restarts=registry.AUTOATTACK_SETTINGS["apgd_restarts"],
                                      square_queries=registry.AUTOATTACK_SETTINGS["square_queries"],
                                      square_p_init=registry.AUTOATTACK_SETTINGS["square_p_init"])
        self._standalone = [(name, registry.clipped(name, self.model, standalone))
                            for name in attacks if name != "autoattack"]
        self._stages = [(name, registry.clipped(name, self.model, cascade))
                        for name in (registry.AUTOATTACK_VERSIONS[version] if "autoattack" in attacks else ())]
        if jit_compile:
            iterative = registry.names("iterative")
            self._standalone, self._stages = ([(name, _with_xla(fn) if name in iterative else fn) for name, fn in fns]
                                              for fns in (self._standalone, self._stages))
        self._batch_counts = tf.function(self._counts, reduce_retracing=True)

    def _correct(self, adversarial):
        return tf.argmax(attacks_lib.logits_of(self.model, adversarial), axis=-1)

    def _on_survivors(self, attack, x, y, eps, alive):
        """`alive` after `attack` ran on the alive examples only (skipped when none is left)."""
        index = tf.where(alive)[:, 0]

        def run():
            xs, ys = tf.gather(x, index), tf.gather(y, index)
            still = self._correct(attack(xs, ys, eps, None)) == ys
            return tf.tensor_scatter_nd_update(tf.zeros_like(alive), index[:, None], still)

        return tf.cond(tf.size(index) > 0, run, lambda: alive)

    def _at_eps(self, x, y, clean, sign, eps):
        """Counts at one ε: correct per standalone attack, alive after each cascade stage, worst case, masking."""
        correct = [self._correct(fn(x, y, eps, sign)) == y for _, fn in self._standalone]
        alive, after = clean, []
        for _, fn in self._stages:
            alive = alive & self._on_survivors(fn, x, y, eps, alive)
            after.append(alive)
        survived = tf.reduce_all(tf.stack([clean] + correct + after[-1:]), axis=0)
        # Possible masking, per example: it survives every gradient attack but a gradient-free/transfer one breaks it.
        white = [ok for (name, _), ok in zip(self._standalone, correct) if registry.ATTACKS[name].white_box]
        white += [ok for (name, _), ok in zip(self._stages, after) if registry.ATTACKS[name].white_box][-1:]
        broken = [~ok for (name, _), ok in zip(self._standalone, correct) if not registry.ATTACKS[name].white_box]
        broken += [before & ~ok for (name, _), before, ok in zip(self._stages, [clean] + after, after)
                   if not registry.ATTACKS[name].white_box]
        masked = tf.zeros_like(clean)
        if white and broken:
            masked = tf.reduce_all(tf.stack([clean] + white), axis=0) & tf.reduce_any(tf.stack(broken), axis=0)
        return tf.stack([_count(ok) for ok in correct + after] + [_count(survived), _count(masked)]), survived

    def _saturated(self, x, y, zero):
        """Of the `zero`-gradient examples, those whose logit margin still has a gradient: the float32
        cross-entropy saturated (softmax exactly one-hot), the model's gradient did not vanish."""
        return tf.cond(tf.reduce_any(zero), lambda: zero & tf.logical_not(zero_rows(attacks_lib.loss_gradient(
            self.model, x, y, attacks_lib.margin_loss))), lambda: tf.zeros_like(zero))

    def _counts(self, x, y, eps):
        """One batch: clean, non-finite, zero-gradient, saturated-loss and example counts, and `_at_eps` counts
        for every ε."""
        x, y = checked_batch(x, y, self.num_classes)
        logits, gradient = attacks_lib.logits_and_gradient(self.model, x, y)
        clean = tf.argmax(logits, axis=-1) == y
        nonfinite = tf.logical_not(tf.reduce_all(tf.math.is_finite(logits), axis=-1))
        zero = zero_rows(gradient)
        sign = direction(gradient)
        per_eps, survived = tf.map_fn(lambda e: self._at_eps(x, y, clean, sign, e), eps,
                                      fn_output_signature=(tf.int64, tf.bool), parallel_iterations=1)
        return (tf.stack([_count(clean), _count(nonfinite), _count(zero), _count(self._saturated(x, y, zero)),
                          tf.size(y, tf.int64)]), per_eps, survived)

    def __call__(self, data, eps_values, *, large_eps=None, tolerance=0.01, survivors=False, checkpoint=None):
        """The report over `data` at every ε of `eps_values` (see `robustness_report`); with `checkpoint` (a file
        path), each batch runs one ε at a time (all at once for single-step attacks) and every finished (batch, ε) is
        saved there, so a stopped report resumes from it with the same counts (`tfdisc.evaluation.checkpoint`)."""
        eps = eps_lib.values(eps_values)
        data = as_dataset(data)
        if self.model is not self._latent:
            sync_quantized_kernels(self._latent, self.model)
        saved = None
        if checkpoint is not None:
            key = model_digest(self._latent, {"attacks": list(self.attacks), "settings": self.settings,
                                              "gradient": discretization_gradient(self.model)})
            saved = ReportCheckpoint(checkpoint, key, len(self._standalone) + len(self._stages) + 2)
        totals, per_eps, batches, kept = np.zeros(5, np.int64), 0, 0, []
        total_batches = chunk_size(data)[1]
        if saved is None:
            progress = Progress(f"Robustness report ({', '.join(self.attacks)} × {len(eps)} eps)", total_batches)
        else:  # counts the units attacked in this call; the ETA is theirs
            progress = Progress(f"Robustness report ({', '.join(self.attacks)}, checkpointed in {checkpoint})",
                                total_batches and max(0, total_batches * len(eps) - len(saved.units)),
                                unit="(batch, ε) units attacked")
        # One trace for any batch size and number of ε: calls below match this relaxed signature.
        self._batch_counts.get_concrete_function(*data.element_spec, tf.TensorSpec([None], tf.float32))
        eps_tensor = tf.constant(eps, tf.float32)
        with checks.clear_errors():
            for x, y in data:
                if saved is None:
                    batch_totals, batch_per_eps, batch_survived = (t.numpy() for t in
                                                                   self._batch_counts(x, y, eps_tensor))
                else:
                    batch_totals, batch_per_eps, batch_survived = self._checkpointed(saved, batches, x, y, eps,
                                                                                     progress)
                totals, per_eps = totals + batch_totals, per_eps + batch_per_eps
                kept.append(batch_survived)
                check_finite_logits(int(totals[1]), int(totals[4]))
                batches += 1
                if saved is None:
                    progress.update(batches)
        progress.update(batches if saved is None else saved.added, final=True)
        if totals[4] == 0:
            raise ValueError("The data holds no examples.")
        kept = np.concatenate(kept, axis=1) if survivors else None
        seconds = progress.elapsed + (saved.seconds if saved else 0.0)
        return self._result(eps, totals, per_eps, kept, seconds, large_eps=large_eps, tolerance=tolerance)

    def _checkpointed(self, saved, batch, x, y, eps, progress):
        """`_batch_counts` of one batch: each ε's counts from `saved` if they are there, else computed and saved. With
        single-step attacks only, the missing ε run in one call (each costs about a forward pass, while a call also
        computes the clean input gradient); otherwise one ε a call, so a stop loses at most one ε's attacks."""
        data = batch_digest(x, y)
        found = {e: saved.get(batch, e, data) for e in eps}
        missing = [e for e in eps if found[e] is None]
        single_step = not self._stages and not any(registry.ATTACKS[name].iterative for name, _ in self._standalone)
        for group in ([missing] if single_step and missing else [[e] for e in missing]):
            totals, counts, survived = (t.numpy() for t in self._batch_counts(x, y, tf.constant(group, tf.float32)))
            for e, unit in zip(group, zip(counts, survived)):
                found[e] = (totals, *unit)
                saved.put(batch, e, data, *found[e], seconds=saved.seconds + progress.elapsed)
                progress.update(saved.added)
        units = [found[e] for e in eps]
        return units[0][0], np.stack([u[1] for u in units]), np.stack([u[2] for u in units])

    def empty_report(self, eps_values: EpsValues) -> dict:
        """The report over no examples, as `__call__(..., survivors=True)` returns it: every share 0, no check run.
        For callers that attack a subset that can be empty (`tfdisc.certification.certified_report`)."""
        eps = eps_lib.values(eps_values)
        columns = len(self._standalone) + len(self._stages) + 2
        return self._result(eps, np.zeros(5, np.int64), np.zeros((len(eps), columns), np.int64),
                            np.zeros((len(eps), 0), bool), 0.0, large_eps=None, tolerance=0.0)

    def _result(self, eps, totals, per_eps, kept, seconds, *, large_eps, tolerance):
        """The report's dict from the summed counts (`_counts`) and, if not None, the survivors per ε."""
        clean, _, zero_gradient, saturated, examples = (int(t) for t in totals)
        names = [name for name, _ in self._standalone] + [f"autoattack/{name}" for name, _ in self._stages]
        accuracy = {name: (per_eps[:, i] / max(examples, 1)).tolist() for i, name in enumerate(names)}
        curves = {name: {"eps": eps, "accuracy": accuracy[name]} for name, _ in self._standalone}
        if self._stages:
            curves["autoattack"] = {"eps": eps, "accuracy": accuracy[names[-1]],
                                    "after": {name: accuracy[f"autoattack/{name}"] for name, _ in self._stages}}
        result = {
            "eps": eps,
            "clean_accuracy": clean / max(examples, 1),
            "examples": examples,
            "gradient": discretization_gradient(self.model),
            "attacks": curves,
            "worst_case": {"eps": eps, "accuracy": (per_eps[:, -2] / max(examples, 1)).tolist()},
            "masking_examples": {"eps": eps, "count": per_eps[:, -1].tolist()},
            "zero_gradient_examples": zero_gradient,
            "saturated_loss_examples": saturated,
            "settings": self.settings,
        }
        result["checks"] = (masking.run_checks(result, large_eps=large_eps, chance=1 / self.num_classes,
                                               tolerance=tolerance) if examples else [])
        result["masking_suspected"] = not all(c["passed"] for c in result["checks"])
        result["seconds"] = seconds
        if kept is not None:  # per ε, which examples survived everything (clean included): for `tfdisc.certification`
            result["survivors"] = kept
        return result


def robustness_report(model: tf.keras.Model, data: Data, eps_values: EpsValues,
                      attacks: Sequence[str] = registry.DEFAULT, surrogate: tf.keras.Model | None = None, *,
                      version: str = "standard", pgd_steps: int = 20, pgd_restarts: int = 5, square_queries: int = 1000,
                      large_eps: float | None = None, tolerance: float = 0.01, seed: int = 0,
                      gradient: str | None = None, jit_compile: bool = False, certify: str | None = None,
                      enumeration_limit: int = 2**16, checkpoint: Path | None = None) -> dict:
    """`RobustnessReport(model, attacks, surrogate, ...)(data, eps_values)`: every attack, worst case, checks; with
    `certify`, the certified accuracy beside them, the attacks running only on what certification leaves.

    # Arguments
        model: a Keras model that returns logits.
        data: (x, y) arrays or a dataset of (images, labels) batches; pixels in [0, 1] or uint8.
        eps_values: the L∞ budgets, in [0, 1] pixel units (sorted and de-duplicated).
        attacks: names of `tfdisc.evaluation.registry.NAMES`; "autoattack" runs the cascade of `version`.
        surrogate: the transfer attack's model.
        large_eps: an ε at which accuracy should be near chance (MNIST 0.5, CIFAR 32/255), for its check.
        tolerance: how far (accuracy share) an aggregate check may be off before it fails.
        gradient: how the model's input discretization passes gradients for this report ("identity", "zero").
        certify: None, or the tightest bound of `tfdisc.certification.certify` ("ibp", "crown", "crown-refined",
            "alpha-crown") for models that begin with an `InputDiscretization` (see
            `tfdisc.certification.certified_report`).
        enumeration_limit: with `certify`, evaluate every input of the level boxes that hold at most this many.
        checkpoint: a file where the attacks save each finished (batch, ε); a call with the same model, attacks,
            settings and file resumes from it and returns what an uninterrupted call returns.

    # Returns
        {"eps", "clean_accuracy", "examples", "gradient", "attacks" ({name: {"eps", "accuracy"}}), "worst_case",
        "checks", "masking_suspected", "settings", "seconds", ...}; with `certify` also "certified" ({"eps",
        "accuracy"}: the lower bound), "gap" (worst case minus certified, per ε) and "certification".
    """
    options = dict(version=version, pgd_steps=pgd_steps, pgd_restarts=pgd_restarts, square_queries=square_queries,
                   seed=seed, gradient=gradient, jit_compile=jit_compile)
    if certify is not None:
        from tfdisc import certification  # certification builds on this module

        return certification.certified_report(model, data, eps_values, attacks, surrogate, bound=certify,
                                              enumeration_limit=enumeration_limit, large_eps=large_eps,
                                              tolerance=tolerance, checkpoint=checkpoint, **options)
    return RobustnessReport(model, attacks, surrogate, **options)(data, eps_values, large_eps=large_eps,
                                                                  tolerance=tolerance, checkpoint=checkpoint)


def report_lines(report: dict) -> list[str]:
    """A robustness report as text lines: accuracy per attack and ε with the worst case, then the checks."""
    names = list(report["attacks"])
    certified = report.get("certified")
    lines = [f"{'eps':>8}" + "".join(f"  {n:>9}" for n in names) + "  worst case"
             + ("  certified         gap" if certified else "")
             + f"   ({report['examples']} examples, {report['gradient']} gradient)"]
    for i, eps in enumerate(report["worst_case"]["eps"]):
        lines.append(f"{eps:8.4f}" + "".join(f"  {report['attacks'][n]['accuracy'][i]:9.4f}" for n in names)
                     + f"  {report['worst_case']['accuracy'][i]:10.4f}"
                     + (f"  {certified['accuracy'][i]:9.4f}  {report['gap'][i]:10.4f}" if certified else ""))
    cascade = report["attacks"].get("autoattack")
    if cascade:
        lines.append(f"  AutoAttack ({report['settings']['autoattack']['version']}), accuracy after each stage, each "
                     "on the previous one's survivors:")
        lines += [f"{eps:8.4f}  " + " → ".join(f"{name} {after[i]:.4f}" for name, after in cascade["after"].items())
                  for i, eps in enumerate(report["eps"])]
    lines.append("  worst case: an example counts only if it is classified correctly clean and under every attack, so "
                 "it can lie below each attack's own column (which also counts clean mistakes that an attack happens "
                 "to fix).")
    if certified:
        bound = report["certification"]["bound"]
        lines.append(f"  certified: the share no input of the ε-ball can misclassify ({bound} bounds and enumeration), "
                     "a lower bound; gap: worst case minus certified. The attacks ran on the "
                     f"{report['examples'] - report['certification']['skipped']} examples not certified at every ε, "
                     "and the checks below on those.")
    lines += [f"  [{'pass' if c['passed'] else 'FAIL'}] {c['check']}: {c['detail']}" for c in report["checks"]]
    return lines
