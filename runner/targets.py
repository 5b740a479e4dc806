"""Placeholder: the targets helper's branch replaces this file (Target as agreed)."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Target:
    """One database, or one tenant schema in one, that a fleet run migrates on its own (own lock, own tracking)."""

    name: str
    dsn: str | None
    schema: str | None = None
