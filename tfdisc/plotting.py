"""Accuracy-vs-eps figures (matplotlib's object API, so the user's pyplot backend is left alone)."""

from typing import Sequence

from matplotlib import cm
from matplotlib.figure import Figure

from tfdisc import files
from tfdisc.types import Path

Curves = dict[str, tuple[Sequence[float], Sequence[float]]]
"""{label: (ε values, accuracy at each)}."""


def report_curves(report: dict, sweep: dict | None = None) -> Curves:
    """{label: (eps, accuracy)} for a robustness report's attacks, worst case and certified accuracy (if any), after
    an optional FGSM sweep."""
    curves = {}
    if sweep is not None:
        curves[f"FGSM sweep ({sweep['gradient']} gradient)"] = (sweep["eps"], sweep["accuracy"])
    curves.update({f"{name} ({report['examples']} ex.)": (c["eps"], c["accuracy"])
                   for name, c in report["attacks"].items()})
    curves["worst case"] = (report["worst_case"]["eps"], report["worst_case"]["accuracy"])
    if "certified" in report:
        curves["certified (lower bound)"] = (report["certified"]["eps"], report["certified"]["accuracy"])
    return curves


def accuracy_figure(curves: Curves, title: str) -> Figure:
    """A figure of {label: (eps list, accuracy list)}, one line each; an identical curve is drawn apart (dotted,
    crosses) and labelled with the one it equals, so no curve hides another."""
    fig = Figure(figsize=(6, 4))
    ax = fig.subplots()
    if len(curves) > 10:  # the default cycle repeats after 10 colours
        ax.set_prop_cycle(color=cm.tab20.colors)
    drawn = {}
    for label, (eps, accuracy) in curves.items():
        same = drawn.get((tuple(eps), tuple(accuracy)))
        if same is not None:
            ax.plot(eps, accuracy, marker="x", markersize=7, linestyle=":", linewidth=2.5, label=f"{label} (= {same})")
            continue
        drawn[(tuple(eps), tuple(accuracy))] = label
        ax.plot(eps, accuracy, marker="o", markersize=3, label=label, linestyle="--" if "adv" in label else "-")
    return _finished(fig, ax, "ε (L∞, pixels in [0, 1])", "accuracy", title)


def _finished(fig, ax, xlabel, ylabel, title):
    """The axes labelled, on a [0, 1] scale with a grid, title and legend."""
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    ax.set_ylim(0, 1)
    ax.grid(alpha=0.3)
    ax.set_title(title, fontsize=10)
    ax.legend(fontsize=7)
    fig.tight_layout()
    return fig


def _save(fig, path):
    """Save `fig` as a PNG at `path`, atomically."""
    with files.atomic_write(path, "wb") as f:
        fig.savefig(f, format="png", dpi=120)


def plot_accuracy_vs_eps(curves: Curves, path: Path, title: str) -> None:
    """Draw {label: (eps list, accuracy list)} (see `accuracy_figure`) and save a PNG at `path`, atomically."""
    _save(accuracy_figure(curves, title), path)


def plot_accuracy_vs_epoch(curves: dict[str, Sequence[float]], path: Path, title: str,
                           target: float | None = None) -> None:
    """Draw {label: accuracy after each epoch} (epochs from 1), with a dashed line at `target`; save a PNG."""
    fig = Figure(figsize=(6, 4))
    ax = fig.subplots()
    for label, accuracy in curves.items():
        ax.plot(range(1, len(accuracy) + 1), accuracy, marker="o", markersize=3, label=label)
    if target is not None:
        ax.axhline(target, color="grey", linestyle="--", linewidth=1, label=f"target {100 * target:.0f}%")
    _save(_finished(fig, ax, "epoch", "clean accuracy", title), path)


def plot_activation_l1(results: dict[str, dict], path: Path, title: str) -> None:
    """Draw {label: `tfdisc.analysis.activation_l1` result}: the mean |activation| per unit on clean and FGSM
    inputs (left), and the share of the clean L1 norm the attack changes, ‖a(x_adv) − a(x)‖₁ / ‖a(x)‖₁ (right)."""
    fig = Figure(figsize=(10, 4))
    left, right = fig.subplots(1, 2)
    for (label, r), color in zip(results.items(), cm.tab10.colors):
        left.plot(r["eps"], [v / r["units"] for v in r["adversarial_l1"]], marker="o", markersize=3, color=color,
                  label=f"{label}, FGSM")
        left.axhline(r["clean_l1"][0] / r["units"], color=color, linestyle=":", label=f"{label}, clean")
        right.plot(r["eps"], [c / a for c, a in zip(r["change_l1"], r["clean_l1"])], marker="o", markersize=3,
                   color=color, label=label)
    left.set_ylabel("mean |activation| per unit")
    right.set_ylabel("‖a(x_adv) − a(x)‖₁ / ‖a(x)‖₁")
    for ax in (left, right):
        ax.set_xlabel("ε (L∞, pixels in [0, 1])")
        ax.grid(alpha=0.3)
        ax.legend(fontsize=7)
    fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    _save(fig, path)
