"""`rag keys create|list|revoke`: the API keys of `rag serve` (only their hashes are stored)."""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path
from typing import Any

from rag.cli.render import EXIT_ERROR, EXIT_OK, print_json
from rag.server.config import DEFAULT_KEYS, NAME
from rag.server.keys import Key, KeyStore, KeyStoreError, Rate
from rag.settings import Settings


def register(sub: Any, env: Settings) -> None:
    keys = sub.add_parser("keys", help="create, list and revoke the API keys of rag serve")
    actions = keys.add_subparsers(dest="action", required=True)
    create = actions.add_parser("create", help="make a key (printed once, never stored)")
    create.add_argument("--collections", required=True, help="the collections it may use, comma-separated")
    create.add_argument("--name", default="", help="who or what it is for")
    create.add_argument("--rate", help="requests it may make, such as 30/minute (default: no limit)")
    listing = actions.add_parser("list", help="the keys (ids, names, collections, rates, times; never the keys)")
    revoke = actions.add_parser("revoke", help="revoke a key by its id (it stays listed)")
    revoke.add_argument("id")
    for action, handler in ((create, cmd_create), (listing, cmd_list), (revoke, cmd_revoke)):
        action.add_argument("--keys", type=Path, default=Path(env.keys) if env.keys else DEFAULT_KEYS,
                            help=f"the key store ($RAG_KEYS, default {DEFAULT_KEYS})")
        action.add_argument("--json", action="store_true", help="print JSON")
        action.set_defaults(func=handler)


def _failed(args: argparse.Namespace, exc: Exception) -> int:
    print(f"rag keys {args.action}: error: {exc}", file=sys.stderr)
    return EXIT_ERROR


def cmd_create(args: argparse.Namespace) -> int:
    collections = [c.strip() for c in args.collections.split(",") if c.strip()]
    try:
        rate = Rate.parse(args.rate) if args.rate else None
        bad = [c for c in collections if not NAME.match(c)] or ([] if collections else ["(none)"])
        if bad:
            raise KeyStoreError(f"--collections: {bad[0]!r} is not a collection name "
                                "(letters, digits, '-', '_', '.'; several separated by commas)")
        key, secret = KeyStore(args.keys).create(collections, args.name, rate)
    except KeyStoreError as exc:
        return _failed(args, exc)
    if args.json:
        print_json(key.to_json() | {"key": secret})
    else:
        print(secret)
        print(f"key {key.id} ({key.name}) for {', '.join(collections)}; shown once, only its hash is kept in "
              f"{args.keys}", file=sys.stderr)
    return EXIT_OK


def cmd_list(args: argparse.Namespace) -> int:
    keys = KeyStore(args.keys).list()
    if args.json:
        print_json([k.to_json() for k in keys])
        return EXIT_OK
    for key in keys:
        print(_line(key))
    if not keys:
        print(f"no keys in {args.keys}", file=sys.stderr)
    return EXIT_OK


def _line(key: Key) -> str:
    def when(t: float | None) -> str:
        return time.strftime("%Y-%m-%d %H:%M", time.localtime(t)) if t else "never"

    state = f"revoked {when(key.revoked_at)}" if key.revoked_at else "active"
    return (f"{key.id}  {key.name}  collections={','.join(key.collections)}  rate={key.rate or 'none'}  {state}  "
            f"created {when(key.created_at)}  last used {when(key.last_used_at)}")


def cmd_revoke(args: argparse.Namespace) -> int:
    try:
        key = KeyStore(args.keys).revoke(args.id)
    except KeyStoreError as exc:
        return _failed(args, exc)
    if args.json:
        print_json(key.to_json())
    else:
        print(f"revoked {key.id} ({key.name})")
    return EXIT_OK
