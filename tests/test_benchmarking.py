"""tfdisc.benchmarking: the benchmark scripts' harness times variants in alternation, feeds them data of the
model's shapes and writes the tables it prints (no assertion here depends on a timing)."""

import json

import numpy as np

from tfdisc import benchmarking


def test_variants_are_warmed_once_then_timed_in_alternation():
    calls = []
    seconds = benchmarking.median_seconds({"a": lambda: calls.append("a"), "b": lambda: calls.append("b")}, 3)
    assert calls == ["a", "b"] * 4
    assert set(seconds) == {"a", "b"} and all(value >= 0 for value in seconds.values())


def test_random_data_has_the_models_shapes_and_is_finite_unless_shuffled():
    model = benchmarking.build("fcn2_bnn")
    cached = list(benchmarking.random_data(model, 8, 3))
    assert len(cached) == 3
    images, labels = cached[0]
    assert images.shape == (8, 28, 28, 1) and images.dtype.name == "float32"
    assert 0 <= float(np.min(images)) and float(np.max(images)) <= 1 and int(np.max(labels)) < 10
    endless = benchmarking.random_data(model, 8, 3, shuffle_seed=0)
    assert len(list(endless.take(7))) == 7


def test_results_are_written_as_json_and_one_markdown_table_per_part(tmp_path):
    results = {"machine": "m", "parts": {"sweep": {"fcn2_full": {"tfdisc_s": 0.12345, "note": "x"},
                                                  "fcn1_bnn": {"tfdisc_s": 2.0}}}}
    markdown = benchmarking.write_results(str(tmp_path / "out"), results, ["Machine: m."])
    assert json.loads((tmp_path / "out.json").read_text()) == results
    assert (tmp_path / "out.md").read_text() == markdown
    assert markdown.split("\n") == ["Machine: m.", "", "### sweep", "", "| model | tfdisc_s | note |",
                                     "|---|---|---|", "| fcn2_full | 0.123 | x |", "| fcn1_bnn | 2 |  |", ""]
