"""Matplotlib helpers: the shared Dice-against-effort plot labels and saving a figure."""

from __future__ import annotations

import os
from typing import Any

from .paths import ensure_parent


def finish_dice_plot(fig: Any, ax: Any, path: str | os.PathLike, *, xlabel: str, title: str,
                     **legend: Any) -> None:
    """Label a Dice-against-effort plot the one way every benchmark does, and save it."""
    ax.set_xlabel(xlabel)
    ax.set_ylabel("mean foreground Dice (test set)")
    ax.set_title(title)
    ax.grid(alpha=0.3)
    ax.legend(**legend)
    save_figure(fig, path)


def save_figure(fig: Any, path: str | os.PathLike) -> None:
    """Lay out, write (120 dpi, parent folders made) and close a matplotlib figure.

    Closing matters: a long benchmark draws several plots and pyplot keeps every open figure.
    """
    import matplotlib.pyplot as plt

    fig.tight_layout()
    ensure_parent(path)
    fig.savefig(path, dpi=120)
    plt.close(fig)
