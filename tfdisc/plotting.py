"""Accuracy-vs-eps figures (matplotlib, written atomically)."""

from tfdisc import io


def plot_accuracy_vs_eps(curves, path, title):
    """Draw {label: (eps list, accuracy list)} as one line each and save a PNG at `path`."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6, 4))
    if len(curves) > 10:  # the default cycle repeats after 10 colours
        ax.set_prop_cycle(color=plt.cm.tab20.colors)
    for label, (eps, accuracy) in curves.items():
        ax.plot(eps, accuracy, marker="o", markersize=3, label=label, linestyle="--" if "adv" in label else "-")
    ax.set_xlabel("ε (L∞, pixels in [0, 1])")
    ax.set_ylabel("accuracy")
    ax.set_ylim(0, 1)
    ax.grid(alpha=0.3)
    ax.set_title(title, fontsize=10)
    ax.legend(fontsize=7)
    fig.tight_layout()
    with io.atomic_write(path, "wb") as f:
        fig.savefig(f, format="png", dpi=120)
    plt.close(fig)
