"""The `simulate` command (placeholder until the simulator lands)."""

from __future__ import annotations
