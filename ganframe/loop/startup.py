"""What a run says when it starts: device, threads, precision, processes, data, run folder.

A run watched through a log file (nohup, CI) or a notebook shows these lines before the
first step, so a wrong device, a thread count fighting other jobs or data read from an
unexpected place is seen at once, not after the run.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

from ganframe.loop.events import Callback

if TYPE_CHECKING:
    from ganframe.loop.trainer import Trainer

__all__ = ["StartupReport", "data_source", "startup_lines"]


class StartupReport(Callback):
    """Says :func:`startup_lines` as messages when the first phase starts: after the phase's
    objective was built, so a recipe that fails there shows only its error."""

    name = ""  # no state

    def __init__(self) -> None:
        self.said = False

    def on_phase_start(self, trainer: Trainer, phase: Any) -> None:
        if self.said or not trainer.is_main:
            return
        self.said = True
        for line in startup_lines(trainer):
            trainer.message(line)


def startup_lines(trainer: Trainer) -> list[str]:
    """The start-up report of a run, one fact per line."""
    import torch

    dev = trainer.device
    name = ""
    if dev.type == "cuda":
        name = f" ({torch.cuda.get_device_name(dev)})"
    world = trainer.dist.world
    return [
        f"device: {dev}{name}; {torch.get_num_threads()} CPU thread(s); precision "
        f"{trainer.settings.precision}; {world} process{'es' if world > 1 else ''}",
        f"data: {data_source(trainer.dataset, trainer.data_info or {})}",
        f"run folder: {trainer.out}",
    ]


def data_source(dataset: Any, info: dict[str, Any]) -> str:
    """What the data is and where it was read from (a dataset's ``source``, or its info's):
    a file or folder, the download cache (it was downloaded), or nowhere (made in memory)."""
    label = str(info.get("name") or type(dataset).__name__)
    kind = getattr(dataset, "kind", "")
    try:
        size = f", {len(dataset):,} items"
    except TypeError:
        size = ""
    text = f"{label} ({kind}{size})" if kind else f"{label}{size}"
    source = getattr(dataset, "source", None) or info.get("source")
    if not source:
        return f"{text}, generated in memory (no files read)"
    return f"{text} from {source}{_cache_note(Path(str(source)))}"


def _cache_note(path: Path) -> str:
    from ganframe.download import cache_dir

    try:
        path.resolve().relative_to(cache_dir().resolve())
    except (ValueError, OSError):
        return ""
    return " (ganframe's download cache: downloaded there when it was first missing)"
