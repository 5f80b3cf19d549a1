"""A real `rag serve` process on a free loopback port, for the served API's tests and
benchmarks/serve_load.py: started with the given collections and key store, waited for until
/health says ready, and stopped (terminate, then kill) however the caller leaves."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path

import httpx

REPO = Path(__file__).resolve().parent.parent


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def child_env() -> dict[str, str]:
    """The environment of a `rag` subprocess: offline, this checkout first on the path."""
    return {**os.environ, "HF_HUB_OFFLINE": "1", "TOKENIZERS_PARALLELISM": "false", "PYTHONPATH": str(REPO)}


def collection_flags(collections: Mapping[str, tuple[Path, Path | None]]) -> list[str]:
    """`--collection NAME=INDEX[:CORPUS]` for each (index, corpus) by name."""
    flags = []
    for name, (index, corpus) in collections.items():
        flags += ["--collection", f"{name}={index}" + (f":{corpus}" if corpus else "")]
    return flags


@contextmanager
def running(collections: Mapping[str, tuple[Path, Path | None]], keys: Path, log: Path, *options: str,
            ready_within: float = 180.0) -> Iterator[str]:
    """`rag serve` over `collections` with the key store `keys`; yields its base URL once /health is ready.
    Its output goes to `log`, whose tail is in the error when it does not become ready."""
    port = free_port()
    command = [sys.executable, "-m", "rag", "serve", *collection_flags(collections), "--port", str(port),
               "--keys", str(keys), *options]
    url = f"http://127.0.0.1:{port}"
    with started(command, f"{url}/health", log, ready_within):
        yield url


@contextmanager
def started(command: list[str], ready: str, log: Path, within: float) -> Iterator[None]:
    """A server process run from `command` (its output in `log`), once GET `ready` answers 200; stopped
    (terminate, then kill) however the caller leaves."""
    with log.open("w") as out:
        process = subprocess.Popen(command, env=child_env(), stdout=out, stderr=subprocess.STDOUT)
    try:
        wait_ready(ready, process, log, within)
        yield
    finally:
        process.terminate()
        try:
            process.wait(15)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(5)


def wait_ready(url: str, process: subprocess.Popen[bytes], log: Path, within: float) -> None:
    deadline = time.monotonic() + within
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"the server for {url} exited with {process.returncode}:\n{log.read_text()[-3000:]}")
        try:
            if httpx.get(url, timeout=2).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.3)
    raise RuntimeError(f"{url} not ready within {within:.0f} s:\n{log.read_text()[-3000:]}")
