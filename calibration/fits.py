"""Curve fits of calibration data: the model, a starting point read off the data, and
scipy's least squares with the errors from its covariance.

Every fit returns the parameters, their one-sigma errors, R² and the reduced χ² (with
binomial errors from the shots), so a task can gate on quality and a reader can judge
the number. A fit that does not converge is a result too (`ok` False, with the reason):
calibration data is often bad, and a task must be able to say so.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np


@dataclass(frozen=True)
class Fit:
    model: str
    values: dict[str, float]
    errors: dict[str, float]
    r_squared: float
    reduced_chi2: float
    ok: bool = True
    reason: str = ""
    curve: Callable[[np.ndarray], np.ndarray] | None = field(default=None, compare=False)


def _failed(model: str, reason: str) -> Fit:
    return Fit(model, {}, {}, float("nan"), float("nan"), ok=False, reason=reason)


def binomial_sigma(p: np.ndarray, shots: int) -> np.ndarray:
    """One-sigma error of a measured probability (never 0: a rule of three floor)."""
    p = np.clip(p, 0.0, 1.0)
    return np.sqrt(np.maximum(p * (1 - p), 1.0 / shots) / shots)


def _fit(
    model: str,
    fn: Callable,
    names: tuple[str, ...],
    x: np.ndarray,
    y: np.ndarray,
    sigma: np.ndarray,
    p0: list[float],
    bounds: tuple[list[float], list[float]],
) -> Fit:
    # Imported here: scipy costs every process that imports the tasks 0.4 s at start.
    from scipy.optimize import curve_fit

    try:
        popt, pcov = curve_fit(
            fn, x, y, p0=p0, sigma=sigma, absolute_sigma=True, bounds=bounds, maxfev=20_000
        )
    except (RuntimeError, ValueError) as err:
        return _failed(model, f"the fit did not converge: {err}")
    errors = np.sqrt(np.clip(np.diag(pcov), 0, None))
    residuals = y - fn(x, *popt)
    total = float(np.sum((y - y.mean()) ** 2))
    r2 = 1 - float(np.sum(residuals**2)) / total if total > 0 else float("nan")
    dof = max(1, len(x) - len(popt))
    chi2 = float(np.sum((residuals / sigma) ** 2)) / dof
    if not np.all(np.isfinite(errors)):
        return _failed(model, "the fit's covariance is undefined (degenerate data)")
    return Fit(
        model,
        dict(zip(names, map(float, popt), strict=True)),
        dict(zip(names, map(float, errors), strict=True)),
        r2,
        chi2,
        curve=lambda xs: fn(np.asarray(xs, dtype=float), *popt),
    )


def exponential_decay(x: np.ndarray, y: np.ndarray, sigma: np.ndarray) -> Fit:
    """y = A·e^(−x/tau) + B."""

    def fn(x, a, tau, b):
        return a * np.exp(-x / tau) + b

    a0 = float(y[0] - y[-1])
    b0 = float(y[-1])
    target = b0 + a0 / math.e
    below = np.flatnonzero((y - target) * np.sign(a0 or 1.0) <= 0)
    tau0 = float(x[below[0]]) if len(below) else float(np.median(x))
    tau0 = max(tau0, float(x[x > 0].min()) if np.any(x > 0) else 1.0)
    span = float(x.max() - x.min()) or 1.0
    return _fit(
        "exponential_decay", fn, ("amplitude", "tau", "offset"), x, y, sigma,
        [a0, tau0, b0], ([-2.0, span * 1e-4, -1.0], [2.0, span * 1e3, 2.0]),
    )  # fmt: skip


def damped_cosine(x: np.ndarray, y: np.ndarray, sigma: np.ndarray) -> Fit:
    """y = A·e^(−x/tau)·cos(2π·f·x + phi) + B; f starts at the spectrum's peak."""

    def fn(x, a, tau, f, phi, b):
        return a * np.exp(-x / tau) * np.cos(2 * np.pi * f * x + phi) + b

    step = float(np.median(np.diff(x)))
    centered = y - y.mean()
    spectrum = np.abs(np.fft.rfft(centered))
    freqs = np.fft.rfftfreq(len(y), d=step)
    f0 = float(freqs[1 + int(np.argmax(spectrum[1:]))]) if len(freqs) > 1 else 0.0
    a0 = float((y.max() - y.min()) / 2) or 0.5
    span = float(x.max() - x.min()) or 1.0
    phi0 = 0.0 if y[0] > y.mean() else math.pi
    return _fit(
        "damped_cosine", fn, ("amplitude", "tau", "frequency", "phase", "offset"), x, y, sigma,
        [a0, span / 2, f0, phi0, float(y.mean())],
        ([0.0, span * 1e-3, 0.0, -2 * math.pi, -1.0], [1.0, span * 1e3, 1 / (2 * step), 4 * math.pi, 2.0]),
    )  # fmt: skip


def rotation_train(n: np.ndarray, y: np.ndarray, sigma: np.ndarray) -> Fit:
    """P(1) after n pulses of a nominal π/2 rotation that really turns (π/2)·(1+eps),
    damped by the pulses' other errors: y = B − A·e^(−n/decay)·cos(n·(π/2)·(1+eps)).
    The cosine has a local minimum every ~4/n in eps, so the start comes from a fine
    grid over eps and a few decays, each solved for A and B by linear least squares
    (cheap), and one nonlinear fit refines the best."""

    def fn(n, a, eps, decay, b):
        return b - a * np.exp(-n / decay) * np.cos(n * (math.pi / 2) * (1 + eps))

    w2 = 1 / sigma**2
    grid = np.linspace(-0.15, 0.15, 601)
    best = (math.inf, 0.0, 1e3)
    for decay in (30.0, 300.0, 3000.0):
        # y ≈ a·c + b for every eps at once: the 2×2 normal equations, row by row
        c = -np.exp(-n / decay)[None, :] * np.cos(np.outer(1 + grid, n) * (math.pi / 2))
        s_cc, s_c, s_1 = (w2 * c * c).sum(1), (w2 * c).sum(1), w2.sum()
        s_cy, s_y = (w2 * c * y).sum(1), (w2 * y).sum()
        det = np.where(np.abs(s_cc * s_1 - s_c**2) > 1e-300, s_cc * s_1 - s_c**2, np.inf)
        a = (s_cy * s_1 - s_c * s_y) / det
        b = (s_cc * s_y - s_c * s_cy) / det
        cost = (w2 * (a[:, None] * c + b[:, None] - y) ** 2).sum(1)
        i = int(np.argmin(cost))
        if cost[i] < best[0]:
            best = (float(cost[i]), float(grid[i]), decay)
    _, eps0, decay0 = best
    return _fit(
        "rotation_train", fn, ("amplitude", "eps", "decay", "offset"), n, y, sigma,
        [0.5, eps0, decay0, 0.5], ([0.0, -0.5, 1.0, -0.5], [1.0, 0.5, 1e7, 1.5]),
    )  # fmt: skip


def rb_decay(m: np.ndarray, y: np.ndarray, sigma: np.ndarray) -> Fit:
    """The difference of survivals after m random Cliffords ending in |0> and in |1>:
    y = A·p^m. The offset B of A·p^m + B, and the readout errors in it, cancel in the
    difference, so short sequences already fix p (with B free, A and B trade off)."""

    def fn(m, a, p):
        return a * p**m

    return _fit(
        "rb_decay", fn, ("amplitude", "p"), m, y, sigma,
        [float(y[0]) if y[0] > 0 else 0.9, 0.999], ([0.0, 0.5], [1.2, 1.0]),
    )  # fmt: skip
