"""Pictures of a run: weight distribution and kinematics of unweighted vs weighted events.

The training history (loss, sigma, rel. std, eps_uw, channel fractions) is drawn by
:meth:`madnis_py.Integrator.plot_history`. Everything here writes PNG files with the
non-interactive Agg backend, to a temporary name renamed when complete.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

__all__ = ["kinematics", "plot_kinematics", "plot_weights"]


def _pyplot() -> Any:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _save(fig: Any, path: Path) -> None:
    """The figure as a PNG, written atomically (exclusive random temporary, then rename)."""
    import io

    from madnis_py._atomic import write_bytes_atomic

    buf = io.BytesIO()
    fig.savefig(buf, dpi=90, format=path.suffix.lstrip(".") or "png")
    write_bytes_atomic(path, buf.getvalue())


def plot_weights(weights: np.ndarray, w_max: float, path: str | Path) -> None:
    """Histogram of log10(w / <w>) with the unweighting's ``w_max`` marked."""
    plt = _pyplot()
    w = np.asarray(weights, dtype=np.float64)
    mean = w.mean()
    pos = w[w > 0] / mean
    fig, ax = plt.subplots(figsize=(6, 4))
    ax.hist(np.log10(pos), bins=100, histtype="step")
    ax.axvline(np.log10(w_max / mean), color="C3", ls="--", label="w_max")
    ax.set(xlabel="log10(w / <w>)", ylabel="points", yscale="log",
           title=f"{len(w)} weighted points, {np.mean(w <= 0):.1%} zero")
    ax.legend()
    fig.tight_layout()
    _save(fig, Path(path))
    plt.close(fig)


def kinematics(momenta: np.ndarray) -> dict[str, np.ndarray]:
    """Observables of every event: pT and rapidity of the first three final-state
    particles and the invariant mass of the final state, from (n, np, 4) momenta."""
    out: dict[str, np.ndarray] = {}
    fin = momenta[:, 2:]
    for i in range(min(fin.shape[1], 3)):
        p = fin[:, i]
        out[f"pT({i + 3}) [GeV]"] = np.hypot(p[:, 1], p[:, 2])
        with np.errstate(divide="ignore", invalid="ignore"):
            out[f"y({i + 3})"] = 0.5 * np.log((p[:, 0] + p[:, 3]) / (p[:, 0] - p[:, 3]))
    tot = fin.sum(axis=1)
    out["m(final) [GeV]"] = np.sqrt(np.maximum(
        tot[:, 0] ** 2 - (tot[:, 1:] ** 2).sum(axis=1), 0.0))
    return out


def plot_kinematics(unweighted: np.ndarray, weighted: np.ndarray, weights: np.ndarray,
                    path: str | Path, *, event_weights: np.ndarray | None = None,
                    bins: int = 40) -> None:
    """Distributions of the unweighted events (points with Poisson errors; weighted by
    ``event_weights`` when overweight events carry more than the others) over those of a
    weighted sample of the same run (line), normalised to unit area, between the 1 % and
    99 % quantiles of the weighted sample."""
    plt = _pyplot()
    ku, kw = kinematics(unweighted), kinematics(weighted)
    ok_w = weights > 0
    # observables fixed by the kinematics (m(final) with lepton beams) are left out
    names = [k for k, v in kw.items()
             if np.ptp(v[ok_w & np.isfinite(v)]) > 1e-9 * np.abs(v[ok_w]).max()]
    cols = min(len(names), 4)
    rows = (len(names) + cols - 1) // cols
    fig, axes = plt.subplots(rows, cols, figsize=(4 * cols, 3.2 * rows), squeeze=False)
    for ax, name in zip(axes.flat, names):
        a, b = ku[name], kw[name]
        ok = np.isfinite(b) & (weights > 0)
        lo, hi = np.quantile(b[ok], [0.01, 0.99])
        edges = np.linspace(lo, hi, bins + 1)
        hw, _ = np.histogram(b[ok], edges, weights=weights[ok])
        fin = np.isfinite(a)
        hu, _ = np.histogram(a[fin], edges,
                             weights=None if event_weights is None else event_weights[fin])
        width = np.diff(edges)
        mid = 0.5 * (edges[1:] + edges[:-1])
        ax.stairs(hw / hw.sum() / width, edges, label="weighted")
        ax.errorbar(mid, hu / max(hu.sum(), 1) / width,
                    np.sqrt(hu) / max(hu.sum(), 1) / width, fmt=".", ms=3,
                    label="unweighted")
        ax.set(xlabel=name)
    for ax in list(axes.flat)[len(names):]:
        ax.axis("off")
    axes.flat[0].legend()
    fig.tight_layout()
    _save(fig, Path(path))
    plt.close(fig)
