"""A task result's figure: the measured points with their errors, the fitted curve, and
the fitted values, as a PNG for the figure store.

matplotlib's object API (Figure and its Agg canvas), not pyplot: pyplot keeps global
state, and figures are rendered from several threads of the server.
"""

from __future__ import annotations

import io
import math

import numpy as np
import orjson
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from matplotlib.ticker import FuncFormatter, NullLocator

from calibration.tasks import Outcome, Task

DATA = "#1f4e79"
FIT = "#d1495b"


def _value_line(task: Task, outcome: Outcome) -> str:
    units = {o.name: o.unit for o in task.outputs}
    parts = []
    for name, value in outcome.values.items():
        error = outcome.errors.get(name, float("nan"))
        unit = f" {units.get(name, '')}".rstrip()
        parts.append(f"{name} = {value:.4g} ± {error:.2g}{unit}")
    return ",  ".join(parts)


def render(task: Task, outcome: Outcome, x_label: str, *, chip: str = "", dpi: int = 110) -> bytes:
    """PNG bytes of one qubit's result of one task."""
    # Fixed margins: constrained layout measured every tick label on every draw, half
    # of the 0.28 s a figure took (a 64-qubit calibration draws 384 of them).
    fig = Figure(figsize=(6.4, 4.0), dpi=dpi)
    fig.subplots_adjust(left=0.11, right=0.97, bottom=0.13, top=0.84)
    FigureCanvasAgg(fig)
    ax = fig.add_subplot()
    if task.name == "ReadoutFidelity" and outcome.ok:
        _assignment_matrix(ax, outcome)
    elif task.name == "BellStateFidelity":
        _correlators(ax, outcome)
    else:
        _curve(ax, task, outcome, x_label)
    where = f"{chip} {_target(outcome)}" if chip else _target(outcome)
    ax.set_title(f"{task.name} · {where}", fontsize=11, loc="left")
    verdict = _value_line(task, outcome) if outcome.ok else f"failed: {outcome.reason}"
    fig.suptitle(verdict, fontsize=9, color="#333333" if outcome.ok else FIT, x=0.02, ha="left")
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png")
    return buffer.getvalue()


def _target(outcome: Outcome) -> str:
    return f"coupling {outcome.qid}" if "-" in outcome.qid else f"Q{outcome.qid}"


def _correlators(ax, outcome: Outcome) -> None:
    """A Bell pair's three measured correlators against |Φ+>'s ideal +1, +1, −1."""
    ax.bar([0, 1, 2], [1, 1, -1], width=0.6, color="none", edgecolor="#999999",
           linestyle="--", label="ideal |Φ+>")  # fmt: skip
    ax.errorbar([0, 1, 2], outcome.y, yerr=outcome.y_err, fmt="o", ms=6, color=DATA,
                label="measured (raw)")  # fmt: skip
    ax.set_xticks([0, 1, 2], ["<ZZ>", "<XX>", "<YY>"])
    ax.set_ylim(-1.15, 1.15)
    ax.axhline(0, color="#333333", lw=0.6)
    ax.grid(alpha=0.25, axis="y")
    ax.legend(fontsize=8, loc="lower left")


def _assignment_matrix(ax, outcome: Outcome) -> None:
    """P(read | prepared), the four numbers a readout calibration is about."""
    p10, p01 = outcome.values["p10"], outcome.values["p01"]
    matrix = np.array([[1 - p10, p01], [p10, 1 - p01]])
    ax.imshow(matrix, cmap="Blues", vmin=0, vmax=1)
    for (row, col), value in np.ndenumerate(matrix):
        ax.text(col, row, f"{value:.4f}", ha="center", va="center",
                color="white" if value > 0.5 else "#1f1f1f", fontsize=12)  # fmt: skip
    ax.set_xticks([0, 1], ["prepared 0", "prepared 1"])
    ax.set_yticks([0, 1], ["read 0", "read 1"])


def _curve(ax, task: Task, outcome: Outcome, x_label: str) -> None:
    x, y, err = (np.asarray(v, dtype=float) for v in (outcome.x, outcome.y, outcome.y_err))
    ax.errorbar(x, y, yerr=err, fmt="o", ms=3.5, color=DATA, ecolor=DATA, elinewidth=0.8,
                capsize=0, label="measured")  # fmt: skip
    if outcome.fit is not None and outcome.fit.ok and outcome.fit.curve is not None and len(x) > 1:
        if np.all(x > 0) and x.max() / x.min() > 50:  # a log-spaced sweep: draw it so
            dense = np.geomspace(x.min(), x.max(), 400)
            ax.set_xscale("log")
            # Plain decade labels, no minor ticks: the default mathtext labels and the
            # minor ticks' artists were a third of a figure's drawing time.
            ax.xaxis.set_major_formatter(FuncFormatter(lambda v, _: f"{v:g}"))
            ax.xaxis.set_minor_locator(NullLocator())
        elif np.allclose(x, np.round(x)) and np.allclose(np.diff(x), 1):
            dense = x  # counted pulses: the model means nothing between whole numbers
        else:
            dense = np.linspace(x.min(), x.max(), 800)
        ax.plot(dense, outcome.fit.curve(dense), color=FIT, lw=1.4,
                label=f"fit ({outcome.fit.model}, R² {outcome.fit.r_squared:.3f})")  # fmt: skip
    ax.set_xlabel(x_label)
    ax.set_ylabel("survival difference" if task.name == "RandomizedBenchmarking" else "P(1)")
    ax.grid(alpha=0.25)
    ax.legend(fontsize=8, frameon=True, framealpha=0.85, loc="best")


def _finite(values) -> list[float | None]:
    return [float(v) if math.isfinite(v) else None for v in values]


def raw_data(task: Task, outcome: Outcome, x_label: str, *, chip: str = "") -> bytes:
    """The measured points, their errors and the fitted curve as a Plotly figure (JSON):
    the task result's raw data, in the form the reference's UI draws interactively."""
    x = np.asarray(outcome.x, dtype=float)
    traces: list[dict] = [
        {"type": "scatter", "mode": "markers", "name": "measured", "x": _finite(x),
         "y": _finite(outcome.y), "error_y": {"type": "data", "array": _finite(outcome.y_err)}}
    ]  # fmt: skip
    fit = outcome.fit
    if fit is not None and fit.ok and fit.curve is not None and len(x) > 1:
        dense = np.linspace(x.min(), x.max(), 200)
        traces.append({"type": "scatter", "mode": "lines", "name": f"fit ({fit.model})",
                       "x": _finite(dense), "y": _finite(fit.curve(dense))})  # fmt: skip
    where = f"{chip} {_target(outcome)}" if chip else _target(outcome)
    meta = {
        "task": task.name, "qubit": outcome.qubit, "qid": outcome.qid, "ok": outcome.ok, "reason": outcome.reason,
        "values": outcome.values, "errors": outcome.errors,
        "quality": {k: v for k, v in outcome.quality.items() if math.isfinite(v)},
    }  # fmt: skip
    figure = {
        "data": traces,
        "layout": {"title": {"text": f"{task.name} · {where}"}, "xaxis": {"title": {"text": x_label}},
                   "yaxis": {"title": {"text": "P(1)"}}},
        "meta": meta,
    }  # fmt: skip
    return orjson.dumps(figure, option=orjson.OPT_SERIALIZE_NUMPY)
