"""Physical lines of a source file, for the few the fast path hands to the reference parser.

Two jobs, both C-speed passes over the bytes that only look at single lines when they must:

* ``strip_carriage_returns``: DuckDB's line reader treats a carriage return as a line end (or,
  in strict mode, as an error), so a file holding one is copied to a scratch file first, with
  ``\\r`` before each ``\\n`` dropped (``parse_line`` strips them too). A line with a ``\\r``
  anywhere else becomes an empty line there (DuckDB skips it; line numbers stay true) and is
  returned for the reference parser.
* ``find_lines``: the line numbers and bytes of the lines the fast path could not vouch for:
  those DuckDB reported by number, and those it returned as text.

Both hand back each line's bytes as they are in the file (without the ``\\n``), so a reject
keeps the physical line exactly, whatever its encoding (``decoded`` is the reference parser's
and the ``line`` column's view of them).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

from cdnlogs.linecount import open_source

_CHUNK = 8 << 20


def decoded(raw: bytes) -> str:
    """A physical line as the reference parser and the rejects' ``line`` column see it."""
    return raw.decode("utf-8", errors="replace").rstrip("\r\n")


def _whole_lines(path: Path) -> Iterator[tuple[int, bytes]]:
    """(number of the first line, bytes of whole lines) chunks; the last may lack a newline."""
    number = 1
    carry = b""
    with open_source(path) as handle:
        while chunk := handle.read(_CHUNK):
            data = carry + chunk
            cut = data.rfind(b"\n") + 1
            carry = data[cut:]
            if cut:
                yield number, data[:cut]
                number += data.count(b"\n", 0, cut)
    if carry:
        yield number, carry


def has_carriage_return(path: Path) -> bool:
    """True when ``path`` holds a ``\\r`` byte anywhere."""
    with open_source(path) as handle:
        while chunk := handle.read(_CHUNK):
            if b"\r" in chunk:
                return True
    return False


def _drop_crlf(data: bytes) -> bytes:
    """``data`` with every ``\\r`` directly before a ``\\n`` dropped (runs of them too).

    ``bytes.replace`` runs at memory speed where the equivalent regex took 3.4 CPU-s per 1 M
    hostile lines; a run of several ``\\r`` (rare) takes one more round per extra ``\\r``.
    """
    while b"\r\n" in data:
        data = data.replace(b"\r\n", b"\n")
    return data


def strip_carriage_returns(source: Path, target: Path) -> dict[int, bytes]:
    """Copy ``source`` to the plain file ``target`` as described above; return the set-aside
    lines (line number -> the line's bytes in ``source``)."""
    aside: dict[int, bytes] = {}
    with target.open("wb") as out:
        for first, data in _whole_lines(source):
            stripped = _drop_crlf(data)
            if stripped.endswith(b"\r"):  # a last line without a newline
                stripped = stripped.rstrip(b"\r")
            if b"\r" in stripped:
                # Line by line from the original bytes, so a set-aside line keeps its own.
                kept = []
                for offset, raw in enumerate(data.split(b"\n")):
                    line = raw.rstrip(b"\r")
                    if b"\r" in line:
                        aside[first + offset] = raw
                        line = b""
                    kept.append(line)
                stripped = b"\n".join(kept)
            out.write(stripped)
    return aside


@dataclass
class Found:
    """What ``find_lines`` found: line number -> bytes, and what it expected but missed."""

    lines: dict[int, bytes] = field(default_factory=dict)
    missing_numbers: int = 0
    missing_texts: int = 0


def find_lines(path: Path, numbers: set[int], texts: Counter[str]) -> Found:
    """The lines of ``path`` with these ``numbers``, and every line whose text is in ``texts``.

    ``texts`` counts how many lines with each text the caller expects (DuckDB returned them
    as text, without numbers); the result says how many it could not find, so the caller can
    tell an exact accounting from a suspect one.
    """
    found = Found()
    wanted = {text.encode("utf-8"): text for text in texts}
    seen: Counter[str] = Counter()
    last = max(numbers, default=0)
    for first, data in _whole_lines(path):
        end = first + data.count(b"\n") + (0 if data.endswith(b"\n") else 1)
        in_chunk = [n for n in numbers if first <= n < end]
        if not in_chunk and not wanted and first > last:
            break
        lines = data.split(b"\n")
        for n in in_chunk:
            found.lines[n] = lines[n - first]
        if wanted:
            for offset, raw in enumerate(lines):
                text = wanted.get(raw.rstrip(b"\r"))
                if text is not None and first + offset not in found.lines:
                    found.lines[first + offset] = raw
                    seen[text] += 1
    found.missing_numbers = len(numbers - found.lines.keys())
    found.missing_texts = sum((texts - seen).values()) + sum((seen - texts).values())
    return found
