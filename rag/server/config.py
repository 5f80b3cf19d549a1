"""What `rag serve` serves and how: collections (`--collection NAME=INDEX[:CORPUS]` or a TOML file)
and the server's options. Bad values raise ConfigError naming the flag or key, so `rag serve`
can say exactly what to fix."""

from __future__ import annotations

import re
import tomllib
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

NAME = re.compile(r"^[A-Za-z0-9._-]{1,64}$")
DEFAULT_KEYS = Path(".rag/keys.sqlite")
LOOPBACK = ("127.0.0.1", "localhost", "::1")


class ConfigError(ValueError):
    """A flag or config key with a bad value; the message names it."""


@dataclass(frozen=True)
class CollectionSpec:
    name: str  # the chat API's `model`
    index: Path
    corpus: Path | None = None  # None: read-only (no upload, delete or rebuild)

    @classmethod
    def parse(cls, text: str, where: str = "--collection") -> CollectionSpec:
        """NAME=INDEX[:CORPUS]."""
        name, eq, rest = text.partition("=")
        if not eq or not rest:
            raise ConfigError(f"{where} {text!r}: expected NAME=INDEX[:CORPUS]")
        index, _, corpus = rest.partition(":")
        return cls.make(name, index, corpus or None, where)

    @classmethod
    def make(cls, name: str, index: str, corpus: str | None, where: str) -> CollectionSpec:
        if not NAME.match(name):
            raise ConfigError(f"{where}: collection name {name!r} may hold only letters, digits, '-', '_' and '.'")
        if not index:
            raise ConfigError(f"{where}: collection {name!r} names no index folder")
        return cls(name, Path(index), Path(corpus) if corpus else None)


@dataclass(frozen=True)
class ServeConfig:
    collections: list[CollectionSpec] = field(default_factory=list)
    host: str = "127.0.0.1"
    port: int = 8000
    keys: Path | None = None  # None: $RAG_KEYS, else DEFAULT_KEYS (resolved by rag.server.run.config_from)
    queue: int = 8  # answers waiting for the models at most (one more is being answered)
    max_question: int = 2000  # characters
    max_body: int = 25 * 2**20  # bytes of a request body (an upload of 20 MiB fits)
    generator: str | None = None
    server: str | None = None
    strict: bool = False

    @property
    def key_store(self) -> Path:
        return self.keys or DEFAULT_KEYS

    @property
    def loopback(self) -> bool:
        return self.host in LOOPBACK

    def with_collections(self, specs: list[CollectionSpec]) -> ServeConfig:
        """Flags win over the file: a --collection replaces the file's collection of that name."""
        named = {c.name: c for c in self.collections} | {c.name: c for c in specs}
        return replace(self, collections=list(named.values()))

    def check(self) -> ServeConfig:
        if not self.collections:
            raise ConfigError("no collection to serve: give --collection NAME=INDEX[:CORPUS] or a [collections] table")
        if not 1 <= self.port <= 65535:
            raise ConfigError(f"--port {self.port}: not a port number (1 to 65535)")
        if self.queue < 0:
            raise ConfigError(f"--queue {self.queue}: must be 0 or more")
        if self.max_question < 1:
            raise ConfigError(f"--max-question {self.max_question}: must be at least 1")
        for spec in self.collections:
            for what, folder in (("index", spec.index), ("corpus", spec.corpus)):
                if folder is not None and not folder.is_dir():
                    raise ConfigError(f"collection {spec.name!r}: its {what} folder {folder} does not exist"
                                      + (" (build it with rag ingest CORPUS --index INDEX)" if what == "index" else ""))
        self._check_apart()
        return self

    def _check_apart(self) -> None:
        """No two collections may share a folder or hold one in the other's corpus (a key for one would list,
        delete or, by a rebuild, index the other's files), and no index may lie inside a corpus (a rebuild
        would index the index)."""
        folders = [(spec.name, what, folder.resolve()) for spec in self.collections
                   for what, folder in (("index", spec.index), ("corpus", spec.corpus)) if folder is not None]
        for name, what, folder in folders:
            for other, other_what, other_folder in folders:
                if (name, what) == (other, other_what):
                    continue
                inside = other_what == "corpus" and folder.is_relative_to(other_folder)
                if name != other and (folder == other_folder or inside):
                    raise ConfigError(f"collections {name!r} and {other!r} overlap: the {what} folder {folder} "
                                      f"is the {other_what} folder {other_folder} or inside it; give each its own")
                if name == other and inside:
                    raise ConfigError(f"collection {name!r}: its index folder {folder} lies inside its corpus "
                                      f"{other_folder} (a rebuild would index the index); keep them apart")


def load_toml(path: Path) -> ServeConfig:
    """A ServeConfig from a TOML file (docs/api.md): host, port, keys, queue, max_question and [collections]."""
    try:
        data = tomllib.loads(path.read_text())
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"--config {path}: cannot read it ({exc})") from exc
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"--config {path}: not valid TOML ({exc})") from exc
    known = {"host": str, "port": int, "keys": str, "queue": int, "max_question": int, "generator": str,
             "server": str, "strict": bool, "collections": dict}
    values: dict[str, Any] = {}
    for key, value in data.items():
        if key not in known:
            raise ConfigError(f"{path}: unknown key {key!r}; known: {', '.join(known)}")
        if not isinstance(value, known[key]) or (known[key] is int and isinstance(value, bool)):
            raise ConfigError(f"{path}: {key} must be a {known[key].__name__}, not {value!r}")
        values[key] = value
    specs = [_table_entry(path, name, value) for name, value in values.pop("collections", {}).items()]
    if "keys" in values:
        values["keys"] = Path(values["keys"])
    return ServeConfig(collections=specs, **values)


def _table_entry(path: Path, name: str, value: object) -> CollectionSpec:
    where = f"{path}: collections.{name}"
    if isinstance(value, str):
        return CollectionSpec.make(name, value, None, where)
    if isinstance(value, dict) and isinstance(value.get("index"), str) and set(value) <= {"index", "corpus"}:
        corpus = value.get("corpus")
        if corpus is not None and not isinstance(corpus, str):
            raise ConfigError(f"{where}.corpus must be a string")
        return CollectionSpec.make(name, value["index"], corpus, where)
    raise ConfigError(f'{where}: expected "INDEX" or {{ index = "INDEX", corpus = "CORPUS" }}')
