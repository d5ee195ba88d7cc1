"""Commands of the remote area (placeholder until its issue lands)."""

from __future__ import annotations
