"""One self-contained HTML page for one run or a comparison of several.

Self-contained means the page needs nothing but itself: CSS and the few lines of script are
inline, plots are inline SVG, sample images are ``data:`` URIs, and a Content-Security-Policy
forbids every fetch, so a report can be mailed, archived or opened offline years later and
shows the same. Every piece of text that came from a run folder is escaped.
"""

from __future__ import annotations

import base64
import html
import math
import time
from collections.abc import Sequence
from datetime import UTC, datetime

from ganframe.report.collect import CheckpointFile, Run, SampleFile
from ganframe.report.figures import colour, groups
from ganframe.report.plots import grid_svg
from ganframe.version import __version__

__all__ = ["render"]

#: Sample grids shown per run (evenly spaced, first and last always among them).
MAX_FRAMES = 24
#: Lines shown of each text sample file.
TEXT_LINES = 12
MAX_IMAGE_BYTES = 4 * 1024 * 1024

_CSP = ("default-src 'none'; img-src data:; style-src 'unsafe-inline'; "
        "script-src 'unsafe-inline'")

_CSS = """
body{font:14px/1.45 system-ui,-apple-system,"Segoe UI",Roboto,sans-serif;color:#1d2330;
margin:0;background:#f4f5f8}
main{max-width:1180px;margin:0 auto;padding:18px 26px 40px}
h1{font-size:24px;margin:8px 0 2px}h2{font-size:19px;margin:30px 0 8px;
border-bottom:1px solid #d9dce3;padding-bottom:4px}h3{font-size:15px;margin:18px 0 6px}
.sub{color:#5b6272;margin:0 0 12px}.card{background:#fff;border:1px solid #e0e3ea;
border-radius:8px;padding:12px 16px;margin:10px 0}
table{border-collapse:collapse;font-size:13px}td,th{padding:3px 12px 3px 0;text-align:left;
vertical-align:top}th{color:#5b6272;font-weight:600}td.num{text-align:right;
font-variant-numeric:tabular-nums}td.n{font-variant-numeric:tabular-nums}
.swatch{display:inline-block;width:11px;height:11px;border-radius:2px;margin-right:6px}
.badge{display:inline-block;padding:1px 9px;border-radius:10px;font-size:12px;
font-weight:600;color:#fff}.finished{background:#2e7d32}.training{background:#1565c0}
.stopped{background:#8d6e00}.interrupted{background:#c62828}.empty{background:#777}
.notes{color:#8a4b00;margin:6px 0;padding-left:20px}
svg.plot{width:100%;height:auto;display:block}
.frames img{image-rendering:pixelated;max-width:100%;border:1px solid #e0e3ea}
.frames img,.final img{width:300px}.final img{image-rendering:pixelated;
border:1px solid #e0e3ea}
.row{display:flex;flex-wrap:wrap;gap:26px;align-items:flex-start}
.pair{display:grid;grid-template-columns:repeat(auto-fit,minmax(380px,1fr));gap:0 22px}
input[type=range]{width:300px}pre{margin:0;white-space:pre-wrap}
pre.poems{font-size:15px;line-height:1.6}
.toml{background:#fafbfc;border:1px solid #e0e3ea;border-radius:6px;padding:10px;
font:12.5px/1.45 ui-monospace,Menlo,Consolas,monospace;overflow:auto;max-height:560px}
.frame[hidden]{display:none}footer{color:#8a90a0;font-size:12px;margin-top:40px}
"""

_SCRIPT = """
document.querySelectorAll('.slider').forEach(function (box) {
  var input = box.querySelector('input');
  var frames = box.querySelectorAll('.frame');
  var label = box.querySelector('.step');
  function show() {
    frames.forEach(function (f, i) { f.hidden = (i !== Number(input.value)); });
    label.textContent = frames[Number(input.value)].dataset.step;
  }
  input.addEventListener('input', show);
  show();
});
"""


def render(runs: Sequence[Run], poems: dict[int, tuple[str, list[str]]] | None = None) -> str:
    """The report page. ``poems``: by run index, (heading, poems) sampled for text runs."""
    title = " vs ".join(r.name for r in runs)
    parts = [_header(runs)]
    if len(runs) > 1:
        parts.append(_comparison(runs))
    for key, heading, panels in groups(runs):
        parts.append(f'<h2 id="{key}">{html.escape(heading)}</h2><div class="card">'
                     f"{grid_svg(panels, legend=len(runs) > 1)}</div>")
    for i, run in enumerate(runs):
        parts.append(_run_section(i, run, (poems or {}).get(i), single=len(runs) == 1))
    made = datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC")
    parts.append(f"<footer>Made by ganframe {html.escape(__version__)} on {made}.</footer>")
    return (f'<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">'
            f'<meta http-equiv="Content-Security-Policy" content="{_CSP}">'
            f'<meta name="viewport" content="width=device-width,initial-scale=1">'
            f"<title>{html.escape(title)} · ganframe report</title>"
            f"<style>{_CSS}{_toml_css()}</style></head><body><main>"
            + "\n".join(parts) + f"</main><script>{_SCRIPT}</script></body></html>\n")


def _header(runs: Sequence[Run]) -> str:
    if len(runs) == 1:
        run = runs[0]
        return (f"<h1>{html.escape(run.name)}</h1>"
                f'<p class="sub">{html.escape(run.description)}</p>{_summary(run)}')
    names = ", ".join(f'<span class="swatch" style="background:{colour(i)}"></span>'
                      f"{html.escape(r.name)}" for i, r in enumerate(runs))
    return f'<h1>Comparison of {len(runs)} runs</h1><p class="sub">{names}</p>'


def _badge(run: Run) -> str:
    return f'<span class="badge {run.status.state}">{html.escape(run.status.state)}</span>'


def _summary(run: Run) -> str:
    rows = [("status", f"{_badge(run)} {html.escape(run.status.text)}"),
            ("wall time", _wall(run)),
            ("folder", html.escape(str(run.path)))]
    last = run.last_checkpoint()
    if last is not None:
        rows.append(("last checkpoint", html.escape(f"{last.name} (step {last.step:,})"
                                                    if last.step is not None else last.name)))
    for label, values in (("final metrics", run.final_metrics()),
                          ("last values", run.last_train_values())):
        if values:
            rows.append((label, html.escape(", ".join(
                f"{k} {_num(v)}" for k, v in values.items()))))
    body = "".join(f"<tr><th>{k}</th><td>{v}</td></tr>" for k, v in rows)
    notes = "".join(f"<li>{html.escape(n)}</li>" for n in run.notes)
    return (f'<div class="card"><table>{body}</table>'
            + (f'<ul class="notes">{notes}</ul>' if notes else "") + "</div>")


def _wall(run: Run) -> str:
    if run.wall_s is None:
        return "unknown"
    return f"{duration(run.wall_s)} <small>({html.escape(run.wall_note)})</small>"


def duration(seconds: float) -> str:
    """``1 h 02 min``, ``3 min 20 s``, ``12 s``."""
    seconds = max(0, round(seconds))
    hours, rest = divmod(seconds, 3600)
    minutes, secs = divmod(rest, 60)
    if hours:
        return f"{hours} h {minutes:02d} min"
    return f"{minutes} min {secs:02d} s" if minutes else f"{secs} s"


def _num(value: float) -> str:
    if not math.isfinite(value):
        return str(value)
    return f"{value:.4g}" if abs(value) < 1e5 else f"{value:,.0f}"


def _comparison(runs: Sequence[Run]) -> str:
    """Runs side by side: status, steps, time, each final metric and last training value."""
    head = "".join(f'<th><span class="swatch" style="background:{colour(i)}"></span>'
                   f"{html.escape(r.name)}</th>" for i, r in enumerate(runs))
    rows = [("recipe", "", [html.escape(str(r.recipe.get("name", "?"))) for r in runs]),
            ("status", "", [f"{_badge(r)} {html.escape(r.status.text)}" for r in runs]),
            ("wall time", "", [duration(r.wall_s) if r.wall_s is not None else "?"
                               for r in runs]),
            ("last checkpoint", "", [_checkpoint_name(r) for r in runs])]
    finals = [r.final_metrics() for r in runs]
    lasts = [r.last_train_values() for r in runs]
    for table, prefix in ((finals, ""), (lasts, "last ")):
        keys = list(dict.fromkeys(k for t in table for k in t))
        rows += [(html.escape(prefix + k), ' class="n"',
                  [_num(t[k]) if k in t else "–" for t in table]) for k in keys]
    body = "".join(f"<tr><th>{k}</th>" + "".join(f"<td{cls}>{v}</td>" for v in vs)
                   + "</tr>" for k, cls, vs in rows)
    notes = "".join(f"<li>{html.escape(r.name)}: {html.escape(n)}</li>"
                    for r in runs for n in r.notes)
    return (f'<h2 id="compare">Side by side</h2><div class="card"><table><tr><th></th>{head}'
            f"</tr>{body}</table>" + (f'<ul class="notes">{notes}</ul>' if notes else "")
            + "</div>")


def _checkpoint_name(run: Run) -> str:
    last = run.last_checkpoint()
    if last is None:
        return "none"
    return html.escape(f"step {last.step:,}" if last.step is not None else last.name)


def _run_section(index: int, run: Run, poems: tuple[str, list[str]] | None,
                 single: bool) -> str:
    parts = []
    if not single:
        parts.append(f'<h2 id="run-{index}"><span class="swatch" style="background:'
                     f'{colour(index)}"></span>{html.escape(run.name)}</h2>'
                     f'<p class="sub">{html.escape(run.description)}</p>{_summary(run)}')
    samples = _samples(run, poems)
    if samples:
        parts.append(f"<h{3 if not single else 2}>Samples</h{3 if not single else 2}>"
                     f'<div class="card">{samples}</div>')
    level = 3 if not single else 2
    parts.append(f'<div class="pair"><div><h{level}>Checkpoints</h{level}><div class="card">'
                 f"{_checkpoints(run.checkpoints)}</div></div><div><h{level}>Environment"
                 f'</h{level}><div class="card">{_env(run)}</div></div></div>')
    if run.recipe_text:
        parts.append(f"<h{level}>Recipe</h{level}>{highlight_toml(run.recipe_text)}")
    return f'<section class="run">{"".join(parts)}</section>'


def _env(run: Run) -> str:
    if not run.env:
        return "<p>Not recorded (no readable checkpoint yet).</p>"
    return "<table>" + "".join(f"<tr><th>{html.escape(k)}</th><td>{html.escape(v)}</td></tr>"
                               for k, v in run.env.items()) + "</table>"


def _checkpoints(items: list[CheckpointFile]) -> str:
    if not items:
        return "<p>None yet.</p>"
    rows = []
    for c in items:
        saved = time.strftime("%Y-%m-%d %H:%M:%S", time.gmtime(c.mtime))
        step = f"{c.step:,}" if c.step is not None else "?"
        note = f" ({html.escape(c.problem)})" if c.problem else ""
        rows.append(f"<tr><td>{html.escape(c.name)}{note}</td><td class=\"num\">{step}</td>"
                    f'<td class="num">{c.size / 1e6:,.1f} MB</td><td>{saved} UTC</td></tr>')
    return ("<table><tr><th>file</th><th>step</th><th>size</th><th>saved</th></tr>"
            + "".join(rows) + "</table>")


def _pick(items: list[SampleFile]) -> list[SampleFile]:
    if len(items) <= MAX_FRAMES:
        return items
    idx = sorted({round(i * (len(items) - 1) / (MAX_FRAMES - 1)) for i in range(MAX_FRAMES)})
    return [items[i] for i in idx]


def _samples(run: Run, poems: tuple[str, list[str]] | None) -> str:
    images = _pick([s for s in run.samples if s.kind == "image"])
    texts = _pick([s for s in run.samples if s.kind == "text"])
    out = []
    if images:
        frames = [(s.step, _image_tag(s)) for s in images]
        frames = [(step, tag) for step, tag in frames if tag]
        if frames:
            which = "Final" if run.status.state == "finished" else "Latest"
            out.append('<div class="row">' + _slider(frames, "Over time")
                       + f'<div class="final"><h3>{which} samples (step {frames[-1][0]:,})'
                       f"</h3>{frames[-1][1]}</div></div>")
    if poems:
        heading, lines = poems
        out.append(f"<h3>{html.escape(heading)}</h3><pre class=\"poems\">"
                   + html.escape("\n".join(lines)) + "</pre>")
    if texts:
        frames = [(s.step, f'<pre class="poems">{html.escape(_text_head(s))}</pre>')
                  for s in texts]
        out.append(_slider(frames, "Samples written while training"))
    others = [s for s in run.samples if s.kind == "file"]
    if others:
        out.append("<p>Other sample files: " + html.escape(", ".join(
            s.path.name for s in others[:20])) + ("..." if len(others) > 20 else "") + "</p>")
    return "".join(out)


def _slider(frames: list[tuple[int, str]], heading: str) -> str:
    last = len(frames) - 1
    body = "".join(f'<div class="frame" data-step="step {step:,}"{" hidden" if i != last else ""}>'
                   f"{tag}</div>" for i, (step, tag) in enumerate(frames))
    return (f'<div class="slider frames"><h3>{html.escape(heading)}: '
            f'<span class="step">step {frames[-1][0]:,}</span></h3>'
            f'<input type="range" min="0" max="{last}" value="{last}" '
            f'aria-label="sample step"><div>{body}</div></div>')


def _image_tag(sample: SampleFile) -> str:
    try:
        if sample.path.stat().st_size > MAX_IMAGE_BYTES:
            return ""
        data = sample.path.read_bytes()
    except OSError:
        return ""
    suffix = sample.path.suffix.lower().lstrip(".")
    mime = {"jpg": "jpeg"}.get(suffix, suffix)
    return (f'<img alt="samples at step {sample.step}" src="data:image/{mime};base64,'
            f'{base64.b64encode(data).decode()}">')


def _text_head(sample: SampleFile) -> str:
    try:
        with sample.path.open("rb") as fh:
            text = fh.read(64 * 1024).decode("utf-8", "replace")
    except OSError:
        return "(cannot be read)"
    return "\n".join(text.splitlines()[:TEXT_LINES])


def highlight_toml(text: str) -> str:
    """The recipe as highlighted HTML (pygments; plain escaped text without it)."""
    try:
        from pygments import highlight
        from pygments.formatters import HtmlFormatter
        from pygments.lexers import TOMLLexer
    except ImportError:
        return f'<pre class="toml">{html.escape(text)}</pre>'
    return highlight(text, TOMLLexer(), HtmlFormatter(cssclass="toml"))


def _toml_css() -> str:
    try:
        from pygments.formatters import HtmlFormatter
    except ImportError:
        return ""
    return HtmlFormatter(style="friendly").get_style_defs(".toml")
