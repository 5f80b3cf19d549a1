"""The key store: keys shown once, only their hashes kept, in a file only its owner reads; revoked keys fail."""

from __future__ import annotations

import hashlib
import json
import sqlite3
import stat
from pathlib import Path

import pytest

from rag.server.errors import ApiError
from rag.server.keys import KeyStore, KeyStoreError, Rate
from rag.server.limits import RateLimiter


def test_a_key_is_created_listed_verified_and_revoked(tmp_path: Path) -> None:
    store = KeyStore(tmp_path / "sub" / "keys.sqlite")
    key, secret = store.create(["bank", "docs"], "alice", Rate.parse("30/minute"))
    assert secret.startswith("rag-") and len(secret) > 40
    assert stat.S_IMODE((tmp_path / "sub" / "keys.sqlite").stat().st_mode) == 0o600
    [listed] = store.list()
    assert (listed.id, listed.name, listed.collections, str(listed.rate)) == (key.id, "alice", ("bank", "docs"),
                                                                              "30/minute")
    assert store.verify(secret) is not None and store.verify(secret + "x") is None and store.verify("") is None
    assert store.any_active()
    store.revoke(key.id)
    assert store.verify(secret) is None and not store.any_active()
    assert store.list()[0].revoked_at is not None
    with pytest.raises(KeyStoreError, match="already revoked"):
        store.revoke(key.id)
    with pytest.raises(KeyStoreError, match="no key with id 'nope'"):
        store.revoke("nope")


def test_only_the_hash_of_a_key_is_stored(tmp_path: Path) -> None:
    store = KeyStore(tmp_path / "keys.sqlite")
    _, secret = store.create(["bank"])
    raw = (tmp_path / "keys.sqlite").read_bytes()
    assert secret.encode() not in raw and secret[4:].encode() not in raw
    rows = sqlite3.connect(tmp_path / "keys.sqlite").execute("SELECT hash FROM keys").fetchall()
    assert rows == [(hashlib.sha256(secret.encode()).hexdigest(),)]


def test_a_store_that_does_not_exist_has_no_keys(tmp_path: Path) -> None:
    store = KeyStore(tmp_path / "none.sqlite")
    assert store.list() == [] and not store.any_active()
    assert not (tmp_path / "none.sqlite").exists()


def test_rates_are_parsed_and_bad_ones_named() -> None:
    assert Rate.parse("30/minute") == Rate(30, 60.0)
    assert Rate.parse("2/seconds") == Rate(2, 1.0) and str(Rate.parse("5/hour")) == "5/hour"
    for bad in ("30", "0/minute", "x/minute", "3/fortnight"):
        with pytest.raises(KeyStoreError, match="expected COUNT/UNIT"):
            Rate.parse(bad)


def test_the_token_bucket_refuses_past_its_rate_and_refills() -> None:
    now = [0.0]
    limiter = RateLimiter(lambda: now[0])
    rate = Rate(2, 60.0)
    limiter.take("k", rate)
    limiter.take("k", rate)
    with pytest.raises(ApiError) as refused:
        limiter.take("k", rate)
    assert refused.value.status == 429 and refused.value.retry_after == 30
    limiter.take("other", rate)  # another key has its own bucket
    now[0] = 30.0
    limiter.take("k", rate)


def test_the_keys_command_prints_a_key_once_lists_and_revokes(tmp_path: Path,
                                                               capsys: pytest.CaptureFixture[str]) -> None:
    from rag.cli import main

    store = str(tmp_path / "keys.sqlite")
    assert main(["keys", "create", "--collections", "bank, docs", "--name", "alice", "--rate", "30/minute",
                 "--keys", store, "--json"]) == 0
    made = json.loads(capsys.readouterr().out)
    assert made["key"].startswith("rag-") and made["collections"] == ["bank", "docs"] and made["rate"] == "30/minute"
    assert main(["keys", "list", "--keys", store]) == 0
    listed = capsys.readouterr().out
    assert made["id"] in listed and "alice" in listed and "active" in listed and made["key"] not in listed
    assert main(["keys", "revoke", made["id"], "--keys", store]) == 0
    assert main(["keys", "list", "--keys", store, "--json"]) == 0
    assert json.loads(capsys.readouterr().out.split("\n", 1)[1])[0]["revoked_at"] is not None
    assert main(["keys", "create", "--collections", "bank", "--rate", "lots", "--keys", store]) == 2
    assert "expected COUNT/UNIT" in capsys.readouterr().err
    assert main(["keys", "create", "--collections", "bank docs", "--keys", store]) == 2
    assert "'bank docs' is not a collection name" in capsys.readouterr().err
