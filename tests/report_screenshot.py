"""Screenshot a report for the docs (not a test): a full-page PNG in headless chromium,
cropped, scaled and reduced to 256 colours so it stays small.

    python tests/report_screenshot.py report.html docs/images/report-NAME.png [--height 2900]
        [--scale 0.8]

--height crops the page (in page pixels, before scaling) below the part worth showing.
docs/images/report-dcgan-mnist.png (--height 2920) and report-compare.png (--height 2100)
were made with it, at the default scale. The poems of a Chinese text run need a CJK font for
chromium (Debian: apt-get install fonts-wqy-microhei), else they show as boxes."""

from __future__ import annotations

import argparse
import io
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from cdp import Browser, find_chromium


def main() -> None:
    from PIL import Image

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("page", type=Path)
    parser.add_argument("out", type=Path)
    parser.add_argument("--height", type=int, default=100_000)
    parser.add_argument("--scale", type=float, default=0.8)
    args = parser.parse_args()
    binary = find_chromium()
    if binary is None:
        sys.exit("no chromium on PATH (apt-get install chromium)")
    with Browser(binary, width=1200) as browser:
        browser.open(args.page)
        problems = browser.problems()
        shot = Image.open(io.BytesIO(browser.screenshot())).convert("RGB")
    if problems:
        sys.exit(f"the page has problems: {problems}")
    shot = shot.crop((0, 0, shot.width, min(shot.height, args.height)))
    size = (round(shot.width * args.scale), round(shot.height * args.scale))
    shot = shot.resize(size, Image.LANCZOS).quantize(
        colors=256, method=Image.Quantize.MEDIANCUT, dither=Image.Dither.NONE)
    shot.save(args.out, optimize=True)
    print(f"{args.out}: {shot.width}x{shot.height}, {args.out.stat().st_size // 1024} KiB")


if __name__ == "__main__":
    main()
