"""Commands status, verify, prune, adopt (placeholder until the sync issue lands)."""

from __future__ import annotations
