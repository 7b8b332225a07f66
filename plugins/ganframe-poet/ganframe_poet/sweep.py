"""Temperature sweep: the quality-diversity curve (BLEU vs self-BLEU) of poet checkpoints.

Lowering the sampling temperature trades diversity for quality; published comparisons
(Caccia et al., 2020, "Language GANs falling short") show that maximum likelihood with a
tuned temperature often beats text GANs. Sampling every checkpoint at several temperatures
and plotting BLEU-3 against self-BLEU-3 shows whether adversarial training moved the curve
or only moved along it. Real training poems scored the same way are drawn as a reference.

    ganframe poet-sweep runs/poet-mle runs/poet-seqgan \\
        --temperatures 0.6,0.7,0.8,0.9,1.0,1.1 -n 1000 --out sweep/

writes ``sweep.csv``, ``sweep.md`` (a table) and ``sweep.png`` (the plot) into ``--out``.
The test split and training poems come from the checkpoint's own recipe ([data] table,
found through ``$GANFRAME_DATA`` or its ``path``) unless ``--references`` names a file.
"""

from __future__ import annotations

import csv
import random
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Annotated, Any

import typer

from ganframe.errors import UserError

COLUMNS = [
    "label", "temperature", "top_p", "bleu2", "bleu3", "bleu4", "bleu5", "self_bleu2", "self_bleu3",
    "self_bleu4", "self_bleu5", "valid_form", "copied", "unique",
]


def _data_split(ckpt: Any, split: str) -> list[str]:
    from ganframe.api import data_root, eval_data_table
    from ganframe.components import BuildContext
    from ganframe.plugins import get_registry

    # a received checkpoint does not choose which files are read: its recorded data path is
    # used only for the user's own run folder (see ganframe.api.evaluate)
    table = dict(eval_data_table(ckpt) or {})
    if table.get("type") is None:
        raise UserError(f"{ckpt.path}: the run's recipe has no [data] table; use --references.")
    spec = get_registry().get("dataset", table.pop("type"))
    config = spec.config_model().model_validate({**table, "split": split, "limit": None})
    data = spec.build(config, BuildContext(data_info=ckpt.info, data_root=data_root()))
    return list(data.poems)


def sweep(
    checkpoints: Sequence[str | Path],
    temperatures: Sequence[float],
    *,
    n: int = 1000,
    seed: int = 0,
    references: str | Path | None = None,
    labels: Sequence[str] | None = None,
    real: bool = True,
    top_p: float = 1.0,
) -> list[dict[str, Any]]:
    """One row of scores per (checkpoint, temperature), plus one for real training poems."""
    from ganframe.api import load_checkpoint
    from ganframe_poet.bleu import BleuScorer
    from ganframe_poet.metrics import sample_poems, score_poems
    from ganframe_poet.text import read_poems

    rows: list[dict[str, Any]] = []
    scorer: BleuScorer | None = None
    train: list[str] | None = None
    for i, path in enumerate(checkpoints):
        ckpt = load_checkpoint(path)
        info = ckpt.info
        if "vocab" not in info:
            raise UserError(f"{path}: not a text checkpoint (its data info has no vocabulary).")
        if scorer is None:
            if references is not None:
                refs = read_poems(Path(references), mode=info["mode"], max_len=info["max_len"],
                                  min_len=1, punctuation=info["punctuation"]).poems
            else:
                refs = _data_split(ckpt, "test")
            scorer = BleuScorer(refs, 5)
            try:
                train = _data_split(ckpt, "train")
            except UserError:
                train = None
        label = labels[i] if labels else Path(path).name
        device = next(ckpt.generator.parameters()).device
        for t in temperatures:
            poems = sample_poems(ckpt.generator, n, info, device=device, seed=seed,
                                 temperature=t, top_p=top_p)
            scores = score_poems(poems, scorer, mode=info["mode"],
                                 punctuation=info["punctuation"],
                                 train_poems=set(train) if train is not None else None)
            rows.append({"label": label, "temperature": t, "top_p": top_p, **scores})
    if real and train is not None and scorer is not None:
        picked = random.Random(seed).sample(train, min(n, len(train)))
        scores = score_poems(picked, scorer, mode=info["mode"], punctuation=info["punctuation"],
                             train_poems=None)
        rows.append({"label": "real (training poems)", "temperature": "", **scores,
                     "copied": ""})
    return rows


def coldest_within(rows: list[dict[str, Any]], margin: float) -> dict[str, float | None]:
    """Per checkpoint label, the lowest temperature whose self-BLEU-3 stays within ``margin``
    of the real poems' own: the diversity constraint picks the temperature, so choosing it
    never looks at the test split."""
    real = next((r for r in rows if r["temperature"] == ""), None)
    if real is None:
        return {}
    limit = float(real["self_bleu3"]) + margin
    out: dict[str, float | None] = {}
    for r in rows:
        if r["temperature"] == "":
            continue
        best = out.setdefault(r["label"], None)
        if float(r["self_bleu3"]) <= limit and (best is None or r["temperature"] < best):
            out[r["label"]] = r["temperature"]
    return out


def write_table(rows: list[dict[str, Any]], out: Path) -> None:
    out.mkdir(parents=True, exist_ok=True)
    with (out / "sweep.csv").open("w", newline="", encoding="utf-8") as f:
        w = csv.DictWriter(f, fieldnames=COLUMNS, extrasaction="ignore")
        w.writeheader()
        w.writerows(rows)
    shown = ["label", "temperature", "bleu2", "bleu3", "bleu4", "self_bleu3", "valid_form",
             "copied", "unique"]

    def fmt(v: Any) -> str:
        return f"{v:.3f}" if isinstance(v, float) else str(v)

    lines = ["| " + " | ".join(shown) + " |", "|" + "---|" * len(shown)]
    lines += ["| " + " | ".join(fmt(r.get(k, "")) for k in shown) + " |" for r in rows]
    (out / "sweep.md").write_text("\n".join(lines) + "\n", encoding="utf-8")


def plot(rows: list[dict[str, Any]], path: Path, *, x_key: str = "self_bleu3",
         y_key: str = "bleu3") -> None:
    """BLEU (quality, up is better) against self-BLEU (lower is more diverse): one line per
    checkpoint through its temperatures, the real poems as a black point; a 720 x 520 PNG
    drawn with matplotlib (the plotting library of ganframe's writers and reports)."""
    import matplotlib

    matplotlib.use("Agg", force=False)
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(7.2, 5.2), dpi=100, facecolor="white")
    FigureCanvasAgg(fig)
    ax = fig.add_subplot()
    palette = ["#1f77b4", "#d62728", "#2ca02c", "#9467bd", "#ff7f0e", "#8c564b"]
    for i, label in enumerate(dict.fromkeys(r["label"] for r in rows)):
        pts = [r for r in rows if r["label"] == label]
        colour = "black" if label.startswith("real") else palette[i % len(palette)]
        xs, ys = [float(r[x_key]) for r in pts], [float(r[y_key]) for r in pts]
        ax.plot(xs, ys, "-o" if len(pts) > 1 else "o", color=colour, linewidth=2,
                markersize=6, label=label[:36])
        for x, y, r in zip(xs, ys, pts, strict=True):
            if r["temperature"] != "":
                ax.annotate(f"T={r['temperature']}", (x, y), textcoords="offset points",
                            xytext=(6, 6), fontsize=8, color=colour)
    ax.margins(0.1)
    ax.grid(True, color="#e5e5e5", linewidth=0.8)
    ax.set_xlabel(f"{x_key} (lower = more diverse)")
    ax.set_ylabel(f"{y_key} vs test split (higher = closer to real poems)")
    ax.legend(fontsize=8, loc="best")
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, format="png", metadata={"Software": None})


def sweep_command(
    checkpoints: Annotated[
        list[Path], typer.Argument(help="Checkpoint files or run folders (one curve each).")
    ],
    temperatures: Annotated[
        str, typer.Option(help="Comma-separated sampling temperatures.")
    ] = "0.6,0.7,0.8,0.9,1.0,1.1",
    n: Annotated[int, typer.Option("-n", help="Poems per temperature.")] = 1000,
    top_p: Annotated[
        float, typer.Option(help="Nucleus sampling at every temperature (1 = off).")
    ] = 1.0,
    seed: Annotated[int, typer.Option(help="Seed of the sampled poems.")] = 0,
    references: Annotated[
        Path | None, typer.Option(help="Reference poem file (default: the test split).")
    ] = None,
    labels: Annotated[
        str | None, typer.Option(help="Comma-separated names for the checkpoints.")
    ] = None,
    out: Annotated[Path, typer.Option("--out", "-o", help="Output folder.")] = Path("sweep"),
    margin: Annotated[
        float, typer.Option(help="Diversity allowance: report the coldest temperature whose "
                            "self-BLEU-3 is at most the real poems' plus this.")
    ] = 0.05,
) -> None:
    """Sample poet checkpoints at several temperatures; write the quality-diversity table
    (sweep.csv, sweep.md) and plot (sweep.png)."""
    try:
        temps = [float(t) for t in temperatures.split(",") if t.strip()]
    except ValueError:
        raise UserError(
            f"--temperatures must be comma-separated numbers, e.g. 0.7,0.8,1.0, not "
            f"{temperatures!r}."
        ) from None
    names = labels.split(",") if labels else None
    if names is not None and len(names) != len(checkpoints):
        raise UserError(
            f"--labels names {len(names)} checkpoint(s) but {len(checkpoints)} were given; "
            "give one name per checkpoint."
        )
    if not temps or any(t <= 0 for t in temps):
        raise UserError("--temperatures must be positive numbers, e.g. 0.7,0.8,1.0.")
    if n <= 0:
        raise UserError(f"-n must be a positive number of poems, not {n}.")
    if not 0.0 < top_p <= 1.0:
        raise UserError(f"--top-p must be in (0, 1] (1 = off), not {top_p}.")
    rows = sweep(checkpoints, temps, n=n, seed=seed, references=references, labels=names,
                 top_p=top_p)
    try:
        write_table(rows, out)
        plot(rows, out / "sweep.png")
    except OSError as exc:
        raise UserError(f"{out}: cannot write the sweep results ({exc.strerror}).") from None
    from ganframe.textsafe import printable  # labels are file names: no terminal codes

    sys.stdout.write(printable((out / "sweep.md").read_text(encoding="utf-8")))
    for label, t in coldest_within(rows, margin).items():
        choice = f"T = {t}" if t is not None else "none of the temperatures tried"
        sys.stdout.write(printable(f"{label}: coldest temperature with self-BLEU-3 <= real + "
                                   f"{margin}: {choice}") + "\n")


if __name__ == "__main__":  # python -m ganframe_poet.sweep ... == ganframe poet-sweep ...
    from ganframe.cli import main

    sys.argv = ["ganframe", "poet-sweep", *sys.argv[1:]]
    main()
