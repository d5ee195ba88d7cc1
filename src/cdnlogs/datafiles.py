"""Which Parquet files of a dataset partition a reader counts: per-source and compacted files.

A partition ``domain=<d>/date=<YYYY-MM-DD>/`` holds, over its life:

- per-source files, ``<stem>.parquet`` (and ``<stem>.reparsed.parquet``), written by ingest;
- compacted files, ``compacted-g<generation>-<digest>-<part>of<parts>.parquet``, written by
  ``cdnlogs compact`` once the day is settled. Each one's Parquet key-value metadata
  (``cdnlogs_sources``) lists the sources (LogNames) its generation holds.

The rule every cdnlogs reader applies (``choose_files``), so that a partition reads as the old
files or the new ones, never both nor neither, whatever moment the listing was taken:

1. A generation counts only when all its parts are listed (an upload in progress does not).
2. The highest complete generation wins; lower generations are superseded (a re-compaction
   always holds everything the one before held).
3. A per-source file whose stem the winning generation holds is covered: its rows are in the
   compacted file, so the per-source file is not read (it is on its way out, or a re-ingested
   source waiting for its day to be compacted again).
4. Every other per-source file (a late source) is read.

Writers therefore add the new generation completely before removing what it replaces. Engines
that only glob (Spark, Trino, ClickHouse) do not apply this rule: see docs/engines.md.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass

#: The glob of the data files under a dataset root (the rejects under ``_rejects/`` are not).
DATA_GLOB = "domain=*/date=*/*.parquet"
#: The Parquet key-value metadata key holding a compacted file's sources (JSON).
SOURCES_KEY = "cdnlogs_sources"
COMPACTED_PREFIX = "compacted-"
#: The name ending of a per-source file's second, small file (the rows the reference parser read).
REPARSED_SUFFIX = ".reparsed.parquet"
PARQUET_SUFFIX = ".parquet"

_COMPACTED = re.compile(
    r"^compacted-g(?P<generation>\d{4,})-(?P<digest>[0-9a-f]{12})-"
    r"(?P<part>\d+)of(?P<parts>\d+)\.parquet$"
)


@dataclass(frozen=True, order=True)
class CompactedName:
    """The parts of a compacted file's name."""

    generation: int
    digest: str
    part: int
    parts: int

    @classmethod
    def parse(cls, name: str) -> CompactedName | None:
        """The parsed name, or None when ``name`` is not a compacted file's."""
        found = _COMPACTED.match(name)
        if found is None:
            return None
        parsed = cls(
            generation=int(found["generation"]),
            digest=found["digest"],
            part=int(found["part"]),
            parts=int(found["parts"]),
        )
        return parsed if 0 <= parsed.part < parsed.parts else None

    @property
    def filename(self) -> str:
        """``compacted-g<generation>-<digest>-<part>of<parts>.parquet``."""
        return (
            f"{COMPACTED_PREFIX}g{self.generation:04d}-{self.digest}-"
            f"{self.part}of{self.parts}{PARQUET_SUFFIX}"
        )


def file_stem(name: str) -> str | None:
    """The source stem of a per-source file's name; None for a compacted or other file."""
    if not name.endswith(PARQUET_SUFFIX) or CompactedName.parse(name) is not None:
        return None
    if name.endswith(REPARSED_SUFFIX):
        return name[: -len(REPARSED_SUFFIX)]
    return name[: -len(PARQUET_SUFFIX)]


@dataclass(frozen=True)
class Choice:
    """What a reader makes of one partition's file names."""

    #: The files to read.
    read: tuple[str, ...]
    #: Files present that must not be read (covered or superseded): what a writer may delete.
    stale: tuple[str, ...]
    #: The winning compacted generation's parts (empty when there is none).
    compacted: tuple[str, ...]
    #: The stems the winning generation holds.
    covered: frozenset[str]

    @property
    def per_source(self) -> tuple[str, ...]:
        """The per-source files read (late sources, or a partition never compacted)."""
        return tuple(n for n in self.read if n not in self.compacted)


def complete_generation(names: Iterable[str]) -> tuple[str, ...]:
    """The parts of the highest generation all of whose parts are in ``names`` (or empty)."""
    groups: dict[tuple[int, str, int], set[int]] = {}
    for name in names:
        parsed = CompactedName.parse(name)
        if parsed is not None:
            groups.setdefault((parsed.generation, parsed.digest, parsed.parts), set()).add(
                parsed.part
            )
    for generation, digest, parts in sorted(groups, reverse=True):
        if groups[(generation, digest, parts)] == set(range(parts)):
            return tuple(
                CompactedName(generation, digest, part, parts).filename for part in range(parts)
            )
    return ()


def choose_files(names: Iterable[str], sources_of: Callable[[str], Iterable[str]]) -> Choice:
    """Apply the reader rule to one partition's file names.

    :param names: the partition's file names (not paths), as listed.
    :param sources_of: the source stems (``dataset.source_stem`` of each LogName) a compacted
        file holds, given its name (from its metadata); called once, for the winning
        generation's first part, and only when the partition also has per-source files.
    """
    listed = sorted(set(names))
    winner = complete_generation(listed)
    per_source = {name: stem for name in listed if (stem := file_stem(name)) is not None}
    covered: frozenset[str] = frozenset()
    if winner and per_source:
        covered = frozenset(sources_of(winner[0]))
    read = [*winner, *(name for name, stem in per_source.items() if stem not in covered)]
    stale = [
        name
        for name in listed
        if name not in read and (name in per_source or CompactedName.parse(name) is not None)
    ]
    return Choice(read=tuple(read), stale=tuple(stale), compacted=winner, covered=covered)
