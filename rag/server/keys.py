"""API keys: which collections a caller may use, and how fast.

A key is shown once, when it is made; the store keeps only its SHA-256 (a key is 32 random
bytes, so a plain hash cannot be guessed back), in an SQLite file readable by its owner only.
`verify` looks the hash up and compares it in constant time, so a wrong key learns nothing
from the timing. Revoked keys stay listed (with when), and never verify again.
"""

from __future__ import annotations

import hashlib
import hmac
import os
import re
import secrets
import sqlite3
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

PREFIX = "rag-"
LAST_USED_EVERY = 60.0  # seconds between two records of a key's last use
UNITS = {"second": 1.0, "minute": 60.0, "hour": 3600.0, "day": 86400.0}
SCHEMA = """CREATE TABLE IF NOT EXISTS keys (
    id TEXT PRIMARY KEY, name TEXT NOT NULL, hash TEXT NOT NULL UNIQUE, collections TEXT NOT NULL,
    rate TEXT, created_at REAL NOT NULL, revoked_at REAL, last_used_at REAL)"""


class KeyStoreError(ValueError):
    """A bad key request (an unknown id, a bad rate); the message says which."""


@dataclass(frozen=True)
class Rate:
    count: int
    per_seconds: float

    @classmethod
    def parse(cls, text: str) -> Rate:
        """"30/minute" (units: second, minute, hour, day)."""
        match = re.fullmatch(r"\s*(\d+)\s*/\s*([a-z]+?)s?\s*", text)
        if not match or match[2] not in UNITS or int(match[1]) < 1:
            raise KeyStoreError(f"rate {text!r}: expected COUNT/UNIT, such as 30/minute (units: {', '.join(UNITS)})")
        return cls(int(match[1]), UNITS[match[2]])

    def __str__(self) -> str:
        unit = next(u for u, s in UNITS.items() if s == self.per_seconds)
        return f"{self.count}/{unit}"


@dataclass(frozen=True)
class Key:
    id: str
    name: str
    collections: tuple[str, ...]
    rate: Rate | None
    created_at: float
    revoked_at: float | None = None
    last_used_at: float | None = None

    def to_json(self) -> dict[str, object]:
        return {"id": self.id, "name": self.name, "collections": list(self.collections),
                "rate": str(self.rate) if self.rate else None, "created_at": self.created_at,
                "revoked_at": self.revoked_at, "last_used_at": self.last_used_at}


def _hash(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


class KeyStore:
    """The keys in one SQLite file (created with mode 0600)."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)

    @contextmanager
    def _db(self) -> Iterator[sqlite3.Connection]:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        if not self.path.exists():
            os.close(os.open(self.path, os.O_CREAT | os.O_WRONLY, 0o600))
        db = sqlite3.connect(self.path, timeout=10)
        try:
            db.execute(SCHEMA)
            with db:
                yield db
        finally:
            db.close()

    def create(self, collections: list[str], name: str = "", rate: Rate | None = None) -> tuple[Key, str]:
        """A new key for `collections`; returns it and its secret, which is never stored or shown again."""
        secret = PREFIX + secrets.token_urlsafe(32)
        key = Key(secrets.token_hex(6), name or "unnamed", tuple(collections), rate, time.time())
        with self._db() as db:
            db.execute("INSERT INTO keys (id, name, hash, collections, rate, created_at) VALUES (?, ?, ?, ?, ?, ?)",
                       (key.id, key.name, _hash(secret), ",".join(collections), str(rate) if rate else None,
                        key.created_at))
        return key, secret

    def list(self) -> list[Key]:
        if not self.path.exists():
            return []
        with self._db() as db:
            rows = db.execute("SELECT id, name, collections, rate, created_at, revoked_at, last_used_at FROM keys "
                              "ORDER BY created_at").fetchall()
        return [_key(row) for row in rows]

    def any_active(self) -> bool:
        """Whether the store holds a key that is not revoked (then every /v1 call needs one)."""
        return any(k.revoked_at is None for k in self.list())

    def revoke(self, key_id: str) -> Key:
        with self._db() as db:
            changed = db.execute("UPDATE keys SET revoked_at = ? WHERE id = ? AND revoked_at IS NULL",
                                 (time.time(), key_id)).rowcount
        found = {k.id: k for k in self.list()}
        if key_id not in found:
            raise KeyStoreError(f"no key with id {key_id!r} (rag keys list shows them)")
        if not changed:
            raise KeyStoreError(f"key {key_id!r} was already revoked")
        return found[key_id]

    def verify(self, secret: str) -> Key | None:
        """The active key whose secret this is, else None; records when it was last used."""
        digest = _hash(secret)
        with self._db() as db:
            row = db.execute("SELECT id, name, collections, rate, created_at, revoked_at, last_used_at, hash "
                             "FROM keys WHERE hash = ?", (digest,)).fetchone()
            if row is None or not hmac.compare_digest(row[7], digest) or row[5] is not None:
                return None
            if row[6] is None or time.time() - row[6] > LAST_USED_EVERY:  # not a write per request
                db.execute("UPDATE keys SET last_used_at = ? WHERE id = ?", (time.time(), row[0]))
        return _key(row[:7])


def _key(row: tuple[Any, ...]) -> Key:
    key_id, name, collections, rate, created, revoked, used = row
    return Key(key_id, name, tuple(c for c in collections.split(",") if c), Rate.parse(rate) if rate else None,
               created, revoked, used)
