"""The shipped generator files are inside the wheels, and stay small.

Each first-party package (ganframe itself, for the toy ``gaussian-ring``; the dcgan and poet
plugins, for the files their ``pretrained/cards.json`` lists) is built with ``pip wheel
--no-deps --no-build-isolation`` from a copy of its source (the working tree gets no build
folders), and every registered file must be in the wheel with its exact bytes, each under
:data:`MAX_FILE_BYTES` (the limit the plugin READMEs document) and the wheel under
:data:`MAX_WHEEL_BYTES`.
"""

from __future__ import annotations

import hashlib
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

from ganframe.cards import read_cards

ROOT = Path(__file__).resolve().parents[1]
#: Each shipped generator file stays under this (docs: about 10 MB).
MAX_FILE_BYTES = 10_000_000
#: A wheel with its generators and the classifier weights stays under this.
MAX_WHEEL_BYTES = 16_000_000
IGNORE = shutil.ignore_patterns("build", "*.egg-info", "__pycache__", "tests", ".hypothesis",
                                "bench")


def _expected(package: str) -> dict[str, str]:
    """In-wheel path -> sha256 of every generator file the package registers."""
    if package == "ganframe":
        from ganframe.builtin import models_plugin

        return {"ganframe/builtin/pretrained/gaussian-ring.safetensors":
                models_plugin.GAUSSIAN_RING_SHA256}
    folder = ROOT / "plugins" / package.replace("_", "-") / package / "pretrained"
    return {f"{package}/pretrained/{e['file']}": e["sha256"]
            for e in read_cards(folder).values()}


def _build(package: str, tmp: Path) -> Path:
    src = tmp / "src"
    if package == "ganframe":
        src.mkdir()
        for name in ("pyproject.toml", "README.md"):
            shutil.copy(ROOT / name, src / name)
        shutil.copytree(ROOT / "ganframe", src / "ganframe", ignore=IGNORE)
    else:
        shutil.copytree(ROOT / "plugins" / package.replace("_", "-"), src, ignore=IGNORE)
    subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation",
                    "-q", str(src), "-w", str(tmp / "out")], check=True, capture_output=True,
                   timeout=300)
    (wheel,) = (tmp / "out").glob("*.whl")
    return wheel


@pytest.mark.parametrize("package", ["ganframe", "ganframe_dcgan", "ganframe_poet"])
def test_wheel_holds_the_registered_generator_files(package: str, tmp_path: Path) -> None:
    expected = _expected(package)
    if not expected:
        pytest.skip(f"{package} ships no pretrained generator yet (no pretrained/cards.json)")
    wheel = _build(package, tmp_path)
    assert wheel.stat().st_size < MAX_WHEEL_BYTES
    with zipfile.ZipFile(wheel) as z:
        names = set(z.namelist())
        for member, sha in expected.items():
            assert member in names, f"{member} is not in {wheel.name}"
            data = z.read(member)
            assert len(data) < MAX_FILE_BYTES, member
            assert hashlib.sha256(data).hexdigest() == sha, member
        if package != "ganframe":
            assert f"{package}/pretrained/cards.json" in names
