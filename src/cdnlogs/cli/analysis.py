"""Commands of the analysis area (placeholder until its issue lands)."""

from __future__ import annotations
