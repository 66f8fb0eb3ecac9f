"""Figures, each saved as PNG and PDF."""
from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # headless: jobs run without a display
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

from mdmlib.core.io import atomic_write  # noqa: E402


def save_figure(fig, png_path: str | Path) -> None:
    """Write ``png_path`` and the PDF beside it."""
    png_path = Path(png_path)
    atomic_write(png_path, lambda f: fig.savefig(f, format="png", dpi=150, bbox_inches="tight"))
    atomic_write(png_path.with_suffix(".pdf"), lambda f: fig.savefig(f, format="pdf", bbox_inches="tight"))
    plt.close(fig)


def image_grid(images: np.ndarray, rows: int) -> np.ndarray:
    """uint8 N x C x H x W -> one H*rows x W*cols x C image with a 1-pixel border."""
    n, c, h, w = images.shape
    cols = rows
    grid = np.full((rows * (h + 1) + 1, cols * (w + 1) + 1, c), 255, dtype=np.uint8)
    for k in range(min(n, rows * cols)):
        r, q = divmod(k, cols)
        grid[1 + r * (h + 1): 1 + r * (h + 1) + h, 1 + q * (w + 1): 1 + q * (w + 1) + w] = images[k].transpose(1, 2, 0)
    return grid


def sample_grid_figure(images: np.ndarray, rows: int, png_path: str | Path, title: str) -> None:
    grid = image_grid(images, rows)
    fig, ax = plt.subplots(figsize=(6, 6.4))
    ax.imshow(grid.squeeze(-1) if grid.shape[-1] == 1 else grid, cmap="gray", interpolation="nearest",
              vmin=0, vmax=255)
    ax.set_title(title, fontsize=10)
    ax.axis("off")
    save_figure(fig, png_path)


def fid_curves_figure(curves, panels, png_path: str | Path, title: str = "", ylabel: str = "FID") -> None:
    """FID curves side by side, one panel per x column: ``curves`` label -> frame with ``fid`` and
    the panels' columns (in plotting order); ``panels`` [(column, x label)]. Log FID axis, shared."""
    fig, axes = plt.subplots(1, len(panels), figsize=(5 * len(panels), 4), sharey=True, squeeze=False)
    for ax, (column, label) in zip(axes[0], panels):
        for i, (name, df) in enumerate(curves.items()):
            ax.plot(df[column], df["fid"], "o-", color=f"C{i}", label=name)
        ax.set_xlabel(label)
        ax.set_yscale("log")
        ax.grid(alpha=0.3, which="both")
    axes[0][0].set_ylabel(ylabel)
    axes[0][0].legend(fontsize=8)
    if title:
        fig.suptitle(title, fontsize=9)
    save_figure(fig, png_path)
