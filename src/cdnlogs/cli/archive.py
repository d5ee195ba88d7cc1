"""Commands of the archive area (placeholder until its issue lands)."""

from __future__ import annotations
