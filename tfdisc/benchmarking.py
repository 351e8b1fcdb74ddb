"""The benchmark scripts' shared harness: models by key, random data through the library's pipeline, median
timings in alternation, and the results written as JSON and markdown tables. It measures; it asserts nothing."""

import json
import statistics
import time
from typing import Callable, Iterable, Mapping

import numpy as np
import tensorflow as tf

from tfdisc import cpu, datasets, files, models

LOSS = tf.keras.losses.SparseCategoricalCrossentropy(from_logits=True)


def build(key: str, **overrides) -> tf.keras.Model:
    """The model named by `key`, "<arch>_<precision>" (for example "fcn1_bnn"), built by `tfdisc.models`."""
    arch, precision = key.rsplit("_", 1)
    return models.build_model(arch, precision=precision, **overrides)


def compiled(model: tf.keras.Model, jit_compile: bool = False) -> tf.keras.Model:
    """`model` compiled as the benchmarks train it: Adam(1e-3), cross-entropy on logits, accuracy."""
    model.compile(tf.keras.optimizers.Adam(1e-3), LOSS, metrics=["accuracy"], jit_compile=jit_compile)
    return model


def random_data(model: tf.keras.Model, batch_size: int, batches: int, *,
                shuffle_seed: int | None = None) -> tf.data.Dataset:
    """`batches` batches of random uint8 images and labels of `model`'s shapes through `tfdisc.datasets.pipeline`.

    # Arguments
    model: gives the image shape (`input_shape`) and the number of classes (`output_shape`).
    batch_size, batches: the data's size.
    shuffle_seed: None for a finite, cached pipeline (filled here, so timing never pays for it); a seed for the
        shuffled, endless pipeline that training runs get.
    """
    rng = np.random.default_rng(0)
    n = batch_size * batches
    x = rng.integers(0, 256, (n, *model.input_shape[1:]), dtype=np.uint8)
    y = rng.integers(0, model.output_shape[-1], n)
    dataset = datasets.pipeline(x, y, batch_size, shuffle_seed=shuffle_seed)
    if shuffle_seed is None:
        for _ in dataset:  # fill the cache
            pass
    return dataset


def median_seconds(variants: Mapping[str, Callable[[], object]], repeats: int) -> dict[str, float]:
    """Median wall-clock seconds per variant: each called once to warm up, then all timed in alternation,
    `repeats` rounds, so that a machine's drift lands on every variant alike."""
    for fn in variants.values():
        fn()
    times = {name: [] for name in variants}
    for _ in range(repeats):
        for name, fn in variants.items():
            start = time.perf_counter()
            fn()
            times[name].append(time.perf_counter() - start)
    return {name: statistics.median(t) for name, t in times.items()}


def machine() -> str:
    """The CPU (`tfdisc.cpu.machine`) and any GPUs TensorFlow sees."""
    gpus = [tf.config.experimental.get_device_details(gpu).get("device_name", gpu.name)
            for gpu in tf.config.list_physical_devices("GPU")]
    return f"{cpu.machine()}, GPUs: {', '.join(gpus) or 'none'}"


def run_parts(benches: Mapping[str, Callable[[str], dict]], parts: Iterable[str],
              keys_for: Callable[[str], Iterable[str]]) -> dict[str, dict[str, dict]]:
    """{part: {key: benches[part](key)}} for each part and each of `keys_for(part)`, in a fresh Keras session
    each, printing every result as it comes."""
    results = {}
    for part in parts:
        results[part] = {}
        for key in keys_for(part):
            tf.keras.backend.clear_session()
            results[part][key] = benches[part](key)
            print(part, key, json.dumps(results[part][key]), flush=True)
    return results


def part_tables(parts: Mapping[str, Mapping[str, Mapping[str, object]]]) -> list[str]:
    """Lines of a "### <part>" markdown table per part of {part: {key: {column: value}}}: one row per key, a
    column per name any key has, floats to 3 significant digits."""
    lines = []
    for part, per_key in parts.items():
        columns = list(dict.fromkeys(name for values in per_key.values() for name in values))
        lines += [f"### {part}", "", "| model | " + " | ".join(columns) + " |", "|---|" + "---|" * len(columns)]
        for key, values in per_key.items():
            cells = [f"{values[c]:.3g}" if isinstance(values.get(c), float) else str(values.get(c, ""))
                     for c in columns]
            lines.append(f"| {key} | " + " | ".join(cells) + " |")
        lines.append("")
    return lines


def write_results(output: str, results: dict, header: Iterable[str]) -> str:
    """Write `results` to <output>.json and, as `header` lines then `part_tables(results["parts"])`, to
    <output>.md, both atomically; returns the markdown."""
    markdown = "\n".join([*header, "", *part_tables(results["parts"])])
    files.write_json_atomic(f"{output}.json", results)
    files.write_text_atomic(f"{output}.md", markdown)
    return markdown
