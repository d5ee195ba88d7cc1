"""The `report` command (placeholder until the analyze issue lands)."""

from __future__ import annotations
