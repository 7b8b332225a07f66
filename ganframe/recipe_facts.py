"""A shipped recipe's one-line summary, made from the recipe file itself.

``ganframe recipes`` and the recipe reference used to show text a plugin wrote when it
registered the recipe ("3000 steps (about 10 min)"), which went stale when the recipe
changed. The summary is now the recipe's own ``description`` (the registered text only when
the recipe has none) followed by its length as the file sets it: steps, epochs or phases,
and the batch size. Reading is TOML only: no validation, no plugins, no torch.
"""

from __future__ import annotations

import tomllib
from typing import Any

__all__ = ["length_facts", "recipe_summary"]


def _amount(table: dict[str, Any]) -> str:
    steps, epochs = table.get("steps"), table.get("epochs")
    if isinstance(steps, int) and not isinstance(steps, bool):
        return f"{steps:,} step{'s' if steps != 1 else ''}"
    if isinstance(epochs, int | float) and not isinstance(epochs, bool):
        return f"{epochs:g} epoch{'s' if epochs != 1 else ''}"
    return "length unset"


def _critic(table: dict[str, Any]) -> str:
    n = table.get("n_critic")
    return f" (n_critic {n})" if isinstance(n, int) and not isinstance(n, bool) and n > 1 else ""


def length_facts(recipe: dict[str, Any]) -> str:
    """``5,628 steps, batch 64`` or ``3 phases: mle 25 epochs, critic 1,500 steps...``."""
    train = recipe.get("train") if isinstance(recipe.get("train"), dict) else {}
    phases = recipe.get("phases")
    if isinstance(phases, list) and phases and all(isinstance(p, dict) for p in phases):
        parts = [f"{p.get('name', f'phase {i + 1}')} {_amount(p)}{_critic(p)}"
                 for i, p in enumerate(phases)]
        text = f"{len(phases)} phase{'s' if len(phases) != 1 else ''}: " + ", ".join(parts)
    else:
        text = _amount(train)
    text += _critic(train)
    batch = train.get("batch_size")
    if isinstance(batch, int) and not isinstance(batch, bool):
        text += f", batch {batch}"
    return text


def recipe_summary(spec: Any) -> str:
    """What ``ganframe recipes`` shows for a registered recipe (a ``RecipeSpec``)."""
    try:
        recipe = tomllib.loads(spec.read_text())
    except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError) as exc:
        reason = exc.strerror if isinstance(exc, OSError) else type(exc).__name__
        return f"{spec.summary} (recipe file unreadable: {reason})".strip()
    description = recipe.get("description")
    if not isinstance(description, str) or not description.strip():
        description = spec.summary
    description = " ".join(str(description).split()).rstrip(".")
    facts = length_facts(recipe)
    return f"{description}; {facts}" if description else facts
