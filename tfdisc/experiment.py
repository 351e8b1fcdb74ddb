"""One training-and-evaluation run: `run(config)` trains, sweeps, attacks and writes the run directory.

The run directory (`tfdisc.runs.RunDirectory`) holds config.json, history.csv (one row per epoch, counted
from 1), checkpoints/ (one per epoch; `resume=True` continues from the last), report_checkpoint.json (the robustness
report's finished (batch, ε) units while it runs; `resume=True` continues it), saved_model/, results.json
(`tfdisc.reporting.records.RunRecord`) and accuracy_vs_eps.png.
"""

import logging
import os
import sys

import larq as lq
import tensorflow as tf

from tfdisc import callbacks, certified_training, cpu, datasets, evaluation, export, files, models, plotting, presets
from tfdisc import recipes
from tfdisc.certification.bounds import UnsupportedLayer
from tfdisc.reporting.records import RunRecord
from tfdisc.runs import RunConfig, RunDirectory, RunError, versions
from tfdisc.training import AdversarialModel

logger = logging.getLogger(__name__)


def strategy_for(config: RunConfig) -> tf.distribute.Strategy:
    """The tf.distribute strategy of `config.distribute` (logical CPU devices split first, if asked)."""
    if config.cpu_devices > 1:
        device = tf.config.list_physical_devices("CPU")[0]
        try:
            tf.config.set_logical_device_configuration(device, [tf.config.LogicalDeviceConfiguration()]
                                                       * config.cpu_devices)
        except RuntimeError:  # TensorFlow already started (in tests): fine if enough CPUs exist
            if len(tf.config.list_logical_devices("CPU")) < config.cpu_devices:
                raise RunError("--cpu_devices must take effect before TensorFlow starts") from None
    if config.distribute == "none":
        return tf.distribute.get_strategy()
    if config.distribute == "multi_worker":
        if "TF_CONFIG" not in os.environ:
            raise RunError("--distribute=multi_worker needs TF_CONFIG describing the cluster and this task.")
        return tf.distribute.MultiWorkerMirroredStrategy()
    gpus = [d.name for d in tf.config.list_logical_devices("GPU")]
    if gpus:
        return tf.distribute.MirroredStrategy(gpus)
    # On CPUs, reduce through one device: collective ops add nothing there, and their process-wide
    # keys clash when a process creates a second strategy.
    return tf.distribute.MirroredStrategy([d.name for d in tf.config.list_logical_devices("CPU")],
                                          cross_device_ops=tf.distribute.ReductionToOneDevice())


def _is_chief(strategy):
    resolver = getattr(strategy, "cluster_resolver", None)
    if resolver is None or not resolver.task_type:
        return True
    return resolver.task_type == "chief" or (resolver.task_type == "worker" and resolver.task_id == 0
                                             and "chief" not in resolver.cluster_spec().as_dict())


class _Data:
    """A run's data: training batches from the first epoch on, the test set, and its sweep and report parts."""

    def __init__(self, config: RunConfig, first_epoch: int, eval_batch: int):
        name, batch = config.dataset, config.batch_size
        common = {"data_dir": config.data_dir, "download": config.download, "subset_order": config.subset}
        if presets.get(name).in_memory:
            x_train, y_train = datasets.load_arrays(name, "train", examples=config.train_examples, **common)
            x_test, y_test = datasets.load_arrays(name, "test", examples=config.test_examples, **common)
            self._check_sizes(config, len(x_train), len(x_test))
            logger.info("%s: %d training and %d test examples", name, len(x_train), len(x_test))
            self.train = datasets.pipeline(x_train, y_train, batch, shuffle_seed=config.seed, first_epoch=first_epoch,
                                           augmented=config.augmented)
            self.steps = datasets.steps_per_epoch(len(x_train), batch)
            self.train_examples = len(x_train) if config.train_examples else None

            def part(examples, order):
                keep = datasets.subset(len(x_test), examples, order)
                return datasets.pipeline(x_test[keep], y_test[keep], eval_batch)

            self.test, self.sweep = part(None, "first"), part(config.sweep_examples or None, "random")
            self.attack = part(config.attack_examples, config.subset)
            return
        self.train = datasets.load(name, "train", batch_size=batch, examples=config.train_examples,
                                   shuffle_seed=config.seed, **common)
        self.steps, self.train_examples = None, config.train_examples
        self.test = datasets.load(name, "test", batch_size=eval_batch, examples=config.test_examples, **common)
        first = lambda examples: self.test.unbatch().take(examples or -1).batch(eval_batch)  # noqa: E731
        self.sweep, self.attack = first(config.sweep_examples), first(config.attack_examples)

    @staticmethod
    def _check_sizes(config, train, test):
        if not train or not test:
            raise RunError(f"{config.dataset} holds {train} training and {test} test examples here; a run needs both. "
                           "Check --data_dir and the data files.")
        if config.train_examples and config.train_examples > train:
            logger.warning("--train_examples=%d is more than the %d training examples; training on all of them.",
                           config.train_examples, train)


def _build(config: RunConfig, strategy):
    """(trained model or its R-FGSM or IBP training wrapper, plain model) compiled under `strategy`."""
    preset = presets.get(config.dataset)
    with strategy.scope():
        try:
            model = models.build_model(config.arch, precision=config.precision, input_bits=config.input_bits,
                                       input_mode=config.input_mode, input_shape=preset.image_shape,
                                       num_classes=preset.num_classes)
        except ValueError as error:
            raise RunError(f"--arch={config.arch} does not fit {config.dataset}'s {preset.image_shape} images "
                           f"({str(error).splitlines()[0][:120]}).") from None
        trainer = model
        if config.adv_train:
            trainer = AdversarialModel(model, eps=config.adv_eps, alpha=config.adv_alpha, adv_ratio=config.adv_ratio,
                                       seed=config.seed)
        elif config.ibp_train:
            try:
                trainer = certified_training.IntervalBoundModel(model, eps=config.ibp_eps, kappa=config.ibp_kappa)
            except UnsupportedLayer as error:
                raise RunError(f"--ibp_train cannot bound --arch={config.arch}: {error}") from None
        optimizer = recipes.optimizer(config.recipe, binarized=config.binarized, epochs=config.epochs,
                                      optimizer_name=config.optimizer, learning_rate=config.learning_rate)
        trainer.compile(optimizer, tf.keras.losses.SparseCategoricalCrossentropy(from_logits=True),
                        metrics=["accuracy"], jit_compile=config.jit_compile)
    return trainer, model


class _Position(tf.keras.callbacks.Callback):
    """Where training is, for the message after an interrupt."""

    epoch = None

    def on_epoch_begin(self, epoch, logs=None):
        self.epoch = epoch
        self.steps_before = int(self.model.optimizer.iterations.numpy())


def _fit(config, run_dir, trainer, model, data, initial_epoch, checkpoint):
    sweeper = (callbacks.EpsilonSweep(data.sweep, config.sweep_eps, config.sweep_every, gradient=config.gradient,
                                      jit_compile=config.jit_compile and config.distribute == "none")
               if config.sweep_every else None)
    position = _Position()
    validation_batches = int(data.test.cardinality())
    fit_callbacks = [callbacks.DivergenceGuard(), position,
                     *recipes.schedule(config.recipe, binarized=config.binarized, epochs=config.epochs),
                     *([sweeper] if sweeper else []), callbacks.EpochTimer(),
                     *([certified_training.budget_ramp(config.ibp_eps, config.ibp_kappa, config.epochs)]
                       if config.ibp_train else []),
                     callbacks.ProgressLog(validation_batches if validation_batches > 0 else None),
                     tf.keras.callbacks.TensorBoard(str(run_dir / "tensorboard")),
                     checkpoint]  # last: it records every other callback's logs in history.csv
    logger.info("Training %s for epochs %d..%d", model.name, initial_epoch + 1, config.epochs)
    try:
        trainer.fit(data.train, epochs=config.epochs, initial_epoch=initial_epoch, steps_per_epoch=data.steps,
                    validation_data=data.test, callbacks=fit_callbacks, verbose=1 if sys.stdout.isatty() else 2)
    except KeyboardInterrupt:
        if position.epoch is None:
            raise
        step = int(trainer.optimizer.iterations.numpy()) - position.steps_before
        kept = (f"Epochs 1..{position.epoch} are checkpointed in {run_dir.checkpoints}" if position.epoch
                else "No epoch had finished, so nothing is checkpointed")
        raise KeyboardInterrupt(f"Interrupted at epoch {position.epoch + 1}, step {step}. {kept}; rerun the same "
                                f"command with --resume to continue from epoch {position.epoch + 1}.") from None


def run(config: RunConfig) -> RunRecord:
    """Train, sweep and attack as `config` says, write the run directory, and return its record."""
    strategy = strategy_for(config)
    with RunDirectory(config, chief=_is_chief(strategy)) as run_dir:
        has_checkpoint = run_dir.has_checkpoint()
        run_dir.check_resume(has_checkpoint)
        tf.keras.utils.set_random_seed(config.seed)
        surrogate = models.load(config.surrogate, "--surrogate", trust=config.trust_model) if config.surrogate else None
        policy = cpu.mixed_precision_policy(config.mixed_precision)
        cpu.set_policy(policy)
        trainer, model = _build(config, strategy)
        checkpoint = callbacks.EpochCheckpoint(str(run_dir.checkpoints), history=str(run_dir / "history.csv"))
        initial_epoch = checkpoint.restore(trainer) if config.resume else 0
        if initial_epoch > config.epochs:
            raise RunError(f"{run_dir.path} has trained {initial_epoch} epochs already, more than "
                           f"--epochs={config.epochs}.")
        data = _Data(config, initial_epoch, max(config.batch_size, evaluation.batch_size_for(model)))
        run_dir.keep_history(initial_epoch)
        run_dir.write_config(config.epochs)
        _write_summary(model, run_dir / "model_summary.txt")
        _fit(config, run_dir, trainer, model, data, initial_epoch, checkpoint)
        if config.export:  # every worker saves (non-chief ones into a temporary folder), as tf.distribute asks
            export.save(model, str(run_dir / "saved_model"), overwrite=True)
        report = evaluation.robustness_report(
            model, data.attack, config.report_eps, config.attacks, surrogate, version=config.autoattack_version,
            pgd_steps=config.pgd_steps, pgd_restarts=config.pgd_restarts, square_queries=config.square_queries,
            seed=config.seed, large_eps=presets.get(config.dataset).large_eps, gradient=config.gradient,
            certify=config.certify, checkpoint=run_dir.report_checkpoint)
        if "fgsm" in config.attacks and config.attack_examples is None and config.report_eps == config.sweep_eps:
            sweep = evaluation.sweep_in(report)  # the report ran this very sweep: every test example, the same ε
        else:
            sweep = evaluation.sweep(model, data.test, config.sweep_eps, gradient=config.gradient)
        record = RunRecord(
            dataset=config.dataset, arch=config.arch, precision=config.precision, input_bits=config.input_bits,
            input_mode=config.input_mode, adv_train=config.adv_train, clean_accuracy=sweep["clean_accuracy"], test_examples=sweep["examples"],
            epochs=config.epochs, subset=config.subset,
            sweep={key: sweep[key] for key in ("attack", "gradient", "eps", "accuracy")},
            attacks=report["attacks"], worst_case=report["worst_case"], checks=report["checks"],
            masking_suspected=report["masking_suspected"],
            certified={**report["certified"], "gap": report["gap"], **report["certification"]}
            if config.certify else None,
            robustness={"examples": report["examples"], "clean_accuracy": report["clean_accuracy"],
                        "gradient": report["gradient"], "seconds": report["seconds"], **report["settings"],
                        "surrogate": config.surrogate},
            train_examples=data.train_examples, recipe=config.recipe,
            adv_settings={"eps": config.adv_eps, "alpha": config.adv_alpha, "ratio": config.adv_ratio}
            if config.adv_train else None,
            ibp_settings={"eps": config.ibp_eps, "kappa": config.ibp_kappa} if config.ibp_train else None,
            resumed_from_epoch=initial_epoch, train_seconds=run_dir.train_seconds(), machine=cpu.machine(),
            compute_policy=policy, replicas=strategy.num_replicas_in_sync, versions=versions(),
            run_dir=str(run_dir.path))
        if not run_dir.chief:
            return record
        plotting.plot_accuracy_vs_eps(plotting.report_curves(report, sweep), str(run_dir / "accuracy_vs_eps.png"),
                                      model.name)
        record.write(run_dir / "results.json")
        run_dir.report_checkpoint.unlink(missing_ok=True)  # its units are in results.json now
        print(summary(record, report))
        warning = chance_warning(record.clean_accuracy, presets.get(config.dataset).num_classes, config.ibp_train)
        if warning:
            logger.warning(warning)
        return record


def chance_warning(clean_accuracy: float, num_classes: int, ibp_train: bool = False) -> str | None:
    """The warning for a trained model whose clean accuracy is within 5 points of chance, else None."""
    chance = 1 / num_classes
    if clean_accuracy >= chance + 0.05:
        return None
    hint = (" IBP training collapses like this when the interval bounds blow up as ε ramps up: lower --ibp_eps or "
            "--learning_rate, or train more epochs." if ibp_train else "")
    return (f"Clean accuracy {100 * clean_accuracy:.1f}% is at chance ({100 * chance:.0f}%): the model learned "
            f"nothing, and its robustness figures mean nothing.{hint}")


def _write_summary(model, path):
    lines = []
    lq.models.summary(model, print_fn=lines.append)
    files.write_text_atomic(path, "\n".join(lines) + "\n")


def summary(record: RunRecord, report: dict) -> str:
    """What a finished run prints: the model, clean accuracy, the FGSM sweep and the robustness report."""
    lines = ["", f"{record.dataset} {record.arch} {record.precision} {record.input_bits}-bit input"
             f"{' adversarially trained' if record.adv_train else ''}{' IBP-trained' if record.ibp_settings else ''}"
             f"  ->  {record.run_dir}",
             f"clean accuracy {record.clean_accuracy:.4f} on {record.test_examples} test examples; train "
             f"{record.train_seconds:.0f} s; gradient through the discretization: {record.sweep['gradient']}",
             f"{'eps':>8}  FGSM sweep"]
    lines += [f"{eps:8.4f}  {accuracy:10.4f}" for eps, accuracy in zip(record.sweep["eps"], record.sweep["accuracy"])]
    return "\n".join(lines + ["Robustness report:", *evaluation.report_lines(report)])
