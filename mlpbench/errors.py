"""Errors the command line turns into one line on stderr and an exit status."""
from __future__ import annotations

__all__ = ["UsageError"]


class UsageError(Exception):
    """Bad input, an unavailable backend, or an environment that cannot run: exit status 2."""
