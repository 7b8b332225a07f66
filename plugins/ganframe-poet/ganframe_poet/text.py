"""Reading poem files, the character vocabulary, decoding and form checks (no torch).

Two layouts are accepted line by line, so one file may mix them: the classic ``poems.txt``
layout ``title:content`` (ASCII colon) used by LSTM poetry tutorials, and one bare poem per
line. A line that cannot be used is skipped and counted under one reason; the counts travel
with the dataset so nothing is lost silently.
"""

from __future__ import annotations

import hashlib
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ganframe.errors import UserError

PAD, UNK, START, END = "<pad>", "<unk>", "B", "E"
SPECIALS: tuple[str, ...] = (PAD, UNK, START, END)

#: Lines and characters per line of the fixed forms; ``free`` has none.
FORMS: dict[str, tuple[int, int]] = {"quatrain5": (4, 5), "quatrain7": (4, 7)}
DEFAULT_MAX_LEN: dict[str, int] = {"quatrain5": 24, "quatrain7": 32, "free": 64}
#: Default data files under ``$GANFRAME_DATA/poems`` per mode.
DEFAULT_FILES: dict[str, str] = {
    "quatrain5": "quatrains5.train.txt",
    "quatrain7": "quatrains7.train.txt",
    "free": "tang_poems.txt",
}
SKIP_REASONS: tuple[str, ...] = (
    "malformed", "unwanted_chars", "too_long", "too_short", "wrong_form",
)
_WHITESPACE = str.maketrans("", "", " \t\r\n\u3000\xa0")


def template(mode: str) -> str | None:
    """The form's layout, 'x' for a character: ``xxxxx，xxxxx。xxxxx，xxxxx。``."""
    if mode not in FORMS:
        return None
    lines, width = FORMS[mode]
    return "".join("x" * width + ("，" if i % 2 == 0 else "。") for i in range(lines))


def is_cjk(ch: str) -> bool:
    """CJK unified ideographs, extension A, compatibility ideographs and extensions B+."""
    o = ord(ch)
    return (
        0x4E00 <= o <= 0x9FFF
        or 0x3400 <= o <= 0x4DBF
        or 0xF900 <= o <= 0xFAFF
        or 0x20000 <= o <= 0x323AF
    )


@dataclass
class ParsedFile:
    poems: list[str]
    skipped: dict[str, int] = field(default_factory=lambda: dict.fromkeys(SKIP_REASONS, 0))
    lines: int = 0
    #: First line number of each skip reason, to point users at an example.
    first_skipped: dict[str, int] = field(default_factory=dict)

    @property
    def n_skipped(self) -> int:
        return sum(self.skipped.values())


def _decode(path: Path) -> str:
    from ganframe.components import open_data_file  # refuses FIFOs, devices and folders

    try:
        with open_data_file(path, "poem file") as fh:
            data = fh.read()
    except FileNotFoundError:
        raise UserError(
            f"{path}: poem file not found. Set `path` in the recipe's [data] table or point "
            "$GANFRAME_DATA at a folder holding poems/."
        ) from None
    except OSError as exc:
        raise UserError(f"{path}: cannot read the poem file ({exc.strerror}).") from None
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        line = data[: exc.start].count(b"\n") + 1
        column = exc.start - (data.rfind(b"\n", 0, exc.start) + 1) + 1
        raise UserError(
            f"{path}, line {line}: not valid UTF-8 (byte 0x{data[exc.start]:02x} at byte "
            f"column {column}). Poem files must be UTF-8 text; convert it first, e.g. "
            f"`iconv -f GB18030 -t UTF-8 {path.name} > fixed.txt`."
        ) from None


def classify(
    line: str, *, mode: str, max_len: int, min_len: int, punctuation: str
) -> tuple[str | None, str]:
    """(skip reason or None, poem) for one non-blank line."""
    if ":" in line:
        _title, _, content = line.partition(":")
        if ":" in content or not content.strip():
            return "malformed", ""
    else:
        content = line
    poem = content.translate(_WHITESPACE)
    if not poem:
        return "malformed", ""
    if any(not (ch in punctuation or is_cjk(ch)) for ch in poem):
        return "unwanted_chars", poem
    if len(poem) > max_len:
        return "too_long", poem
    form = template(mode)
    if form is not None:
        if len(poem) < len(form):
            return "too_short", poem
        if not fits_template(poem, form, punctuation):
            return "wrong_form", poem
    elif len(poem) < min_len:
        return "too_short", poem
    return None, poem


def fits_template(poem: str, form: str, punctuation: str) -> bool:
    """Characters where the form has 'x', punctuation where it has punctuation."""
    if len(poem) != len(form):
        return False
    for ch, slot in zip(poem, form, strict=True):
        if not (is_cjk(ch) if slot == "x" else ch in punctuation):
            return False
    return True


def read_poems(
    path: Path, *, mode: str, max_len: int, min_len: int, punctuation: str
) -> ParsedFile:
    """Parse a poem file, skipping and counting the lines that are not usable poems."""
    text = _decode(path)
    out = ParsedFile([])
    nonblank = 0
    for number, raw in enumerate(text.splitlines(), start=1):
        out.lines = number
        line = raw.strip()
        if not line:
            continue
        nonblank += 1
        reason, poem = classify(
            line, mode=mode, max_len=max_len, min_len=min_len, punctuation=punctuation
        )
        if reason is None:
            out.poems.append(poem)
        else:
            out.skipped[reason] += 1
            out.first_skipped.setdefault(reason, number)
    if nonblank == 0:
        raise UserError(
            f"{path}, line 1: the poem file is empty. Put one poem per line "
            "(or 'title:content' lines) in UTF-8."
        )
    if not out.poems:
        raise UserError(
            f"{path}: none of its {nonblank} poem lines is usable for mode {mode!r} with "
            f"max_len {max_len} ({describe_skips(out)}). Check `mode` and `max_len` in the "
            "recipe's [data] table."
        )
    return out


def describe_skips(parsed: ParsedFile) -> str:
    parts = [
        f"{reason.replace('_', ' ')} {count} (first at line {parsed.first_skipped[reason]})"
        for reason, count in parsed.skipped.items()
        if count
    ]
    return "skipped " + ", ".join(parts) if parts else "nothing skipped"


def in_holdout(poem: str, fraction: float) -> bool:
    """A fixed, order-independent choice of test poems by a hash of the text."""
    if fraction <= 0:
        return False
    digest = hashlib.blake2b(poem.encode("utf-8"), digest_size=8).digest()
    return int.from_bytes(digest, "big") / 2**64 < fraction


@dataclass
class Vocab:
    """Characters by training frequency after the four special tokens."""

    tokens: list[str]

    @classmethod
    def build(cls, poems: Iterable[str], min_count: int = 1) -> Vocab:
        counts = Counter(ch for poem in poems for ch in poem)
        chars = sorted((c for c, n in counts.items() if n >= min_count and c not in SPECIALS),
                       key=lambda c: (-counts[c], c))
        return cls([*SPECIALS, *chars])

    def __post_init__(self) -> None:
        self.index = {tok: i for i, tok in enumerate(self.tokens)}
        for special in SPECIALS:
            if special not in self.index:
                raise ValueError(f"vocabulary lacks the special token {special!r}")

    def __len__(self) -> int:
        return len(self.tokens)

    @property
    def pad(self) -> int:
        return self.index[PAD]

    @property
    def unk(self) -> int:
        return self.index[UNK]

    @property
    def start(self) -> int:
        return self.index[START]

    @property
    def end(self) -> int:
        return self.index[END]

    def encode(self, poem: str) -> list[int]:
        unk = self.unk
        return [self.index.get(ch, unk) for ch in poem]


def decode_ids(rows: Sequence[Sequence[int]], info: dict[str, Any]) -> list[str]:
    """Token id rows to poems: stop at the end token, drop padding and start tokens."""
    vocab: list[str] = info["vocab"]
    end, pad, start, unk = info["end"], info["pad"], info["start"], info["unk"]
    out = []
    for row in rows:
        chars = []
        for tok in row:
            if tok == end:
                break
            if tok in (pad, start):
                continue
            chars.append("□" if tok == unk else vocab[tok])
        out.append("".join(chars))
    return out


def valid_form(poem: str, mode: str, punctuation: str) -> bool:
    """In the mode's fixed form; for free poems: equal-length lines, each closed by punctuation."""
    form = template(mode)
    if form is not None:
        return fits_template(poem, form, punctuation)
    if not poem or poem[-1] not in punctuation:
        return False
    lengths, run = [], 0
    for ch in poem:
        if ch in punctuation:
            if run == 0:
                return False
            lengths.append(run)
            run = 0
        elif is_cjk(ch):
            run += 1
        else:
            return False
    return len(set(lengths)) == 1
