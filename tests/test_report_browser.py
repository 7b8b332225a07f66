"""A report opened in a real browser (headless chromium, driven over the DevTools protocol):
it loads without console errors, fetches nothing but itself, and shows what it should: the
runs' names, plots and sample images with ink in them (checked on a screenshot), a slider
that moves through the sample grids.

.ci/run installs Debian's chromium when it is missing; where it cannot be installed this
file is skipped, saying so."""

from __future__ import annotations

import io
from pathlib import Path

import pytest
from typer.testing import CliRunner

from ganframe import api
from ganframe.cli import app

pytest.importorskip("websocket", reason="websocket-client (the [test] extra) drives chromium")
from cdp import Browser, find_chromium

CHROMIUM = find_chromium()
pytestmark = pytest.mark.skipif(
    CHROMIUM is None, reason="no chromium on PATH: .ci/run installs it with "
    "'apt-get install -y chromium'; without it the report cannot be checked in a browser")

RING = [
    "generator.hidden=8", "critic.hidden=8", "train.steps=12", "train.log_every=2",
    "train.batch_size=32", "train.sample_every=4", "train.checkpoint_every=4",
    "train.sample_count=256", "metrics.0.every=4", "metrics.0.n_samples=64",
]

#: what the page shows for each element we look at: plots and sample images
VISIBLE = """JSON.stringify(Array.from(document.querySelectorAll(
  'svg.plot, .frame:not([hidden]) img, .final img')).map(e => {
    const r = e.getBoundingClientRect();
    return {tag: e.tagName, x: r.x + scrollX, y: r.y + scrollY, w: r.width, h: r.height};
  }))"""


@pytest.fixture(scope="module")
def pages(tmp_path_factory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("browser")
    one = root / "ring-one"
    api.train(api.load_recipe("gaussian-ring", RING), out=one)
    two = root / "ring-two"
    api.train(api.load_recipe("gaussian-ring", [*RING, "seed=1"]), out=two, max_steps=8)
    out = {}
    for name, runs in (("single", [one]), ("compare", [one, two])):
        path = root / f"{name}.html"
        result = CliRunner().invoke(app, ["report", *map(str, runs), "-o", str(path)])
        assert result.exit_code == 0, (result.stdout, result.stderr)
        out[name] = path
    return out


@pytest.fixture(scope="module")
def browser():
    assert CHROMIUM is not None
    with Browser(CHROMIUM) as b:
        yield b


def has_ink(shot, box: dict) -> bool:
    """Whether the screenshot shows something inside ``box``: at least 50 pixels (and 0.1%)
    differ from its most common colour (a sample scatter plot is mostly white)."""
    crop = shot.crop((int(box["x"]), int(box["y"]), int(box["x"] + box["w"]),
                      int(box["y"] + box["h"]))).convert("L")
    counts = sorted((n for n, _ in crop.getcolors(maxcolors=256)), reverse=True)
    ink = sum(counts[1:])
    return ink >= 50 and ink >= 0.001 * sum(counts)


def open_and_check(browser: Browser, page: Path) -> tuple[str, object, list[dict]]:
    import json

    from PIL import Image

    browser.open(page)
    assert browser.problems() == []
    fetched = [u for u in browser.requests() if not u.startswith("data:")]
    assert fetched == [page.resolve().as_uri()]  # the file itself and nothing else
    text = browser.evaluate("document.body.innerText")
    boxes = json.loads(browser.evaluate(VISIBLE))
    shot = Image.open(io.BytesIO(browser.screenshot())).convert("RGB")
    return text, shot, boxes


def test_a_single_run_report_loads_clean_and_shows_plots_and_samples(browser, pages):
    text, shot, boxes = open_and_check(browser, pages["single"])
    assert "ring-one (gaussian-ring)" in text and "finished: 12 steps" in text
    plots = [b for b in boxes if b["tag"] == "svg"]
    images = [b for b in boxes if b["tag"] == "IMG"]
    assert len(plots) >= 2 and len(images) == 2  # slider frame + final samples
    for box in boxes:
        assert box["w"] > 100 and box["h"] > 100, box
        assert has_ink(shot, box), box
    blank = {"x": 0, "y": shot.height - 12, "w": 8, "h": 10}  # margin: no ink, the check works
    assert not has_ink(shot, blank)


def test_the_sample_slider_moves_through_the_grids(browser, pages):
    browser.open(pages["single"])
    label = "document.querySelector('.slider .step').textContent"
    shown = ("Array.from(document.querySelectorAll('.slider .frame'))"
             ".map(f => !f.hidden).join()")
    assert browser.evaluate(label) == "step 12"
    assert browser.evaluate(shown) == "false,false,true"
    browser.evaluate("(() => { const s = document.querySelector('.slider input');"
                     "s.value = 0; s.dispatchEvent(new Event('input')); })()")
    assert browser.evaluate(label) == "step 4"
    assert browser.evaluate(shown) == "true,false,false"
    assert browser.problems() == []


def test_a_comparison_loads_clean_and_names_both_runs(browser, pages):
    text, shot, boxes = open_and_check(browser, pages["compare"])
    assert "Comparison of 2 runs" in text
    assert "ring-one (gaussian-ring)" in text and "ring-two (gaussian-ring)" in text
    assert "stopped at step 8 of 12" in text
    images = [b for b in boxes if b["tag"] == "IMG"]
    assert len(images) == 4  # two runs: slider frame + final samples each
    for box in boxes:
        assert has_ink(shot, box), box
    # the two runs' colours are both on the screen (matplotlib's first two)
    pixels = {c for _, c in shot.resize((shot.width // 2, shot.height // 2)).getcolors(1 << 24)}
    near = [any(sum(abs(a - b) for a, b in zip(p, want, strict=True)) < 40 for p in pixels)
            for want in ((0x1F, 0x77, 0xB4), (0xFF, 0x7F, 0x0E))]
    assert near == [True, True]
