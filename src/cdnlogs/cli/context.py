"""Per-invocation state shared by the commands: verbosity, debug, and the output streams."""

from __future__ import annotations

import sys
from dataclasses import dataclass, field
from typing import TextIO


@dataclass
class AppContext:
    """What every command may need besides its own options. Tests may swap the streams."""

    verbose: int = 0
    debug: bool = False
    stdout: TextIO = field(default_factory=lambda: sys.stdout)
    stderr: TextIO = field(default_factory=lambda: sys.stderr)

    @property
    def interactive(self) -> bool:
        """True when stderr is a terminal (progress bars go there)."""
        return self.stderr.isatty()
