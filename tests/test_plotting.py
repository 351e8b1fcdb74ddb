"""tfdisc.plotting: figures that show every curve, written atomically."""

from tfdisc import plotting


def test_identical_curves_are_drawn_apart_and_named():
    curves = {"fgsm": ([0, 0.1], [0.9, 0.5]), "pgd": ([0, 0.1], [0.9, 0.4]), "worst case": ([0, 0.1], [0.9, 0.4])}
    figure = plotting.accuracy_figure(curves, "test")
    labels = [t.get_text() for t in figure.axes[0].get_legend().get_texts()]
    assert labels == ["fgsm", "pgd", "worst case (= pgd)"]
    assert figure.axes[0].get_lines()[2].get_linestyle() == ":"


def test_a_figure_is_written_as_png(tmp_path):
    plotting.plot_accuracy_vs_eps({"a": ([0, 0.1], [1, 0.5])}, str(tmp_path / "f.png"), "t")
    assert (tmp_path / "f.png").read_bytes()[:4] == b"\x89PNG"
    assert [p.name for p in tmp_path.iterdir()] == ["f.png"]  # no temporary file left


def test_a_report_with_certification_draws_its_lower_bound():
    report = {"examples": 100, "attacks": {"fgsm": {"eps": [0.05, 0.1], "accuracy": [0.9, 0.8]}},
              "worst_case": {"eps": [0.05, 0.1], "accuracy": [0.9, 0.8]}}
    assert list(plotting.report_curves(report)) == ["fgsm (100 ex.)", "worst case"]
    report["certified"] = {"eps": [0.05, 0.1], "accuracy": [0.7, 0.2]}
    assert plotting.report_curves(report)["certified (lower bound)"] == ([0.05, 0.1], [0.7, 0.2])
