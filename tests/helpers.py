"""Shared pieces of the tests: the one-line-error assertion and a fake backend whose library is missing."""
from __future__ import annotations

from backends.base import Backend

__all__ = ["MissingLibraryBackend", "assert_one_line_error"]


def assert_one_line_error(code, err, *fragments, status=2):
    """The command exited ``status`` with one line on stderr, no traceback, holding ``fragments``."""
    assert code == status, err
    lines = err.strip().splitlines()
    assert len(lines) == 1, err
    assert "Traceback" not in err
    for fragment in fragments:
        assert fragment in lines[0], lines[0]


class MissingLibraryBackend(Backend):
    """A fake backend whose library is never there, for testing how the harness refuses or skips it."""

    def __init__(self, name: str, library: str, install_hint: str) -> None:
        self.name, self.library, self.install_hint = name, library, install_hint

    def _import(self):
        raise ImportError(f"No module named {self.library.replace('-', '_')!r}")
