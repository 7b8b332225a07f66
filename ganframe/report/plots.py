"""Line plots for reports, drawn with matplotlib and kept as inline SVG.

Why matplotlib: it is the best-kept plotting library in Python, renders without a display
(the Agg/SVG backends) and without a network, writes SVG that any browser shows offline, and
is the library the rest of ganframe plots with too. It is imported inside the functions
here, so ``ganframe --help`` never pays for it.

Every plot is a grid of small panels, one per quantity; each run is one colour throughout
a report, so the same colour means the same run in every panel.
"""

from __future__ import annotations

import io
import math
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

__all__ = ["COLOURS", "Line", "Panel", "grid_svg"]

#: One colour a run (matplotlib's tab10, readable on white and by most colour-blind eyes).
COLOURS = ("#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2",
           "#7f7f7f", "#bcbd22", "#17becf")

_figures = 0
#: One panel's size and its margins (left, right, top, bottom) for tick labels and titles,
#: in inches; the legend of a comparison takes a strip on top.
PANEL_IN = (3.6, 2.5)
MARGIN_IN = (0.62, 0.18, 0.36, 0.45)
LEGEND_IN = 0.35


@dataclass
class Line:
    label: str
    colour: str
    xs: list[float]
    ys: list[float]


@dataclass
class Panel:
    title: str
    lines: list[Line] = field(default_factory=list)
    #: (step, label) where a phase begins, drawn as dotted vertical lines
    marks: list[tuple[float, str]] = field(default_factory=list)
    ylabel: str = ""


def grid_svg(panels: Sequence[Panel], *, columns: int = 3, legend: bool = False) -> str:
    """The panels as one SVG figure (an ``<svg>`` element, ready to inline in HTML)."""
    import matplotlib
    from matplotlib.figure import Figure  # no pyplot: no backend, no global figure state

    global _figures
    _figures += 1
    columns = max(1, min(columns, len(panels)))
    rows = math.ceil(len(panels) / columns)
    top = LEGEND_IN if legend else 0.0
    width, height = PANEL_IN[0] * columns, PANEL_IN[1] * rows + top
    left = MARGIN_IN[0] + (0.2 if any(p.ylabel for p in panels) else 0.0)
    with matplotlib.rc_context(_STYLE | {"svg.hashsalt": f"ganframe-report-{_figures}"}):
        fig = Figure(figsize=(width, height))
        for i, panel in enumerate(panels):
            row, col = divmod(i, columns)
            # fixed margins instead of tight_layout: the same look, a third of the time
            x0 = col * PANEL_IN[0] + left
            y0 = height - top - (row + 1) * PANEL_IN[1] + MARGIN_IN[3]
            w = PANEL_IN[0] - left - MARGIN_IN[1]
            h = PANEL_IN[1] - MARGIN_IN[2] - MARGIN_IN[3]
            _draw(fig.add_axes((x0 / width, y0 / height, w / width, h / height)), panel)
        if legend:
            _legend(fig, panels)
        buf = io.StringIO()
        fig.savefig(buf, format="svg", metadata={"Date": None, "Creator": None})
    return clean_svg(buf.getvalue())


_STYLE: dict[str, Any] = {
    "svg.fonttype": "none",  # text stays text: smaller files, the page's font
    "font.size": 8.5,
    "axes.titlesize": 9.5,
    "axes.spines.top": False,
    "axes.spines.right": False,
    "axes.grid": True,
    "grid.alpha": 0.3,
    "lines.linewidth": 1.3,
}


def _draw(ax: Any, panel: Panel) -> None:
    from matplotlib.ticker import MaxNLocator

    ax.set_title(_plain(panel.title), loc="left")
    few = max((len(line.ys) for line in panel.lines), default=0) <= 12
    style = {"marker": "o", "markersize": 3} if few else {}  # the same for every run
    for line in panel.lines:
        ys = [y if math.isfinite(y) else float("nan") for y in line.ys]
        ax.plot(line.xs, ys, color=line.colour, label=_plain(line.label), **style)
    for x, label in panel.marks:
        ax.axvline(x, color="#888888", linestyle=":", linewidth=0.9)
        ax.annotate(_plain(label), (x, 1), xycoords=("data", "axes fraction"), fontsize=7,
                    color="#666666", xytext=(2, -3), textcoords="offset points",
                    rotation=90, va="top", ha="left")  # upright: close phases do not collide
    ax.set_xlabel("step")
    if panel.ylabel:
        ax.set_ylabel(panel.ylabel)
    values = [abs(y) for line in panel.lines for y in line.ys if math.isfinite(y) and y]
    if values and max(values) / min(values) > 1e4 and all(
            y > 0 for line in panel.lines for y in line.ys if math.isfinite(y)):
        ax.set_yscale("log")
    ax.ticklabel_format(axis="x", style="plain", useOffset=False)
    ax.xaxis.set_major_locator(MaxNLocator(nbins=6, integer=True))  # steps are whole


def _plain(text: str) -> str:
    """Text from a run folder as matplotlib shows it literally: ``$`` would start math
    (and a malformed formula fail the whole report), a leading ``_`` hides a legend entry."""
    text = text.replace("$", r"\$")
    return f" {text}" if text.startswith("_") else text


def _legend(fig: Any, panels: Sequence[Panel]) -> None:
    seen: dict[str, Any] = {}
    for ax in fig.axes:
        for handle, label in zip(*ax.get_legend_handles_labels(), strict=True):
            seen.setdefault(label, handle)
    if seen:
        fig.legend(list(seen.values()), list(seen), loc="upper center",
                   ncol=min(len(seen), 5), frameon=False, fontsize=9)


_XML_DECL = re.compile(r"<\?xml[^>]*>\s*")
_DOCTYPE = re.compile(r"<!DOCTYPE[^>]*>\s*", re.S)
_METADATA = re.compile(r"<metadata>.*?</metadata>\s*", re.S)
_XMLNS = re.compile(r'\s+xmlns(:\w+)?="[^"]*"')
_SIZE = re.compile(r'<svg([^>]*?) width="([\d.]+)pt" height="([\d.]+)pt"')


def clean_svg(text: str) -> str:
    """matplotlib's SVG file as an inline element: no XML declaration, DOCTYPE, metadata or
    namespace URLs (HTML needs none of them and a report holds no URL), and a width that
    scales with the page."""
    text = _METADATA.sub("", _DOCTYPE.sub("", _XML_DECL.sub("", text)))
    text = _XMLNS.sub("", text)
    return _SIZE.sub(
        lambda m: f'<svg{m.group(1)} class="plot" style="max-width:{m.group(2)}pt"',
        text, count=1).strip()
