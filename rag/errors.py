"""The errors an index raises: each one a problem the user must act on, and the message says how."""

from __future__ import annotations


class StoreError(RuntimeError):
    """Base for index problems a user must act on (the message says how)."""


class IndexNotFound(StoreError):
    pass


class IndexCorrupt(StoreError):
    pass


class IndexMismatch(StoreError):
    pass


class IndexLocked(StoreError):
    pass


class IndexWriteError(StoreError):
    """The index folder could not be written (disk full, read-only, no permission)."""
