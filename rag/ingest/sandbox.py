"""Parse files in a worker process with a time and a memory limit.

A parser that hangs on a crafted file, or a PDF whose streams inflate to gigabytes, must cost
that one file, not the build: the worker is killed at the time limit (and replaced), and its
address space is capped so an allocation past the limit fails inside the worker. Either way
the file gets a `LoadError` with the reason and the build goes on.
"""

from __future__ import annotations

import multiprocessing
import resource
from concurrent.futures import TimeoutError as FutureTimeout
from dataclasses import dataclass
from types import TracebackType

from rag.ingest.loaders import Document, LoadError, load

DEFAULT_TIMEOUT_S = 60.0
DEFAULT_MEMORY_BYTES = 4 << 30


@dataclass(frozen=True)
class ParseLimits:
    timeout_s: float = DEFAULT_TIMEOUT_S  # per file
    memory_bytes: int = DEFAULT_MEMORY_BYTES  # the worker's address space


def _limit_memory(memory_bytes: int) -> None:
    resource.setrlimit(resource.RLIMIT_AS, (memory_bytes, memory_bytes))


def _load(suffix: str, data: bytes) -> Document:
    try:
        return load(suffix, data)
    except MemoryError:
        raise LoadError("parsing needed more memory than the limit allows (a decompression bomb?)") from None


class Parser:
    """One worker process, reused from file to file, replaced when it is killed or dies."""

    def __init__(self, limits: ParseLimits = ParseLimits()) -> None:
        from pebble import ProcessPool  # with asyncio, 0.2 s to import: only when files are parsed

        self.limits = limits
        self._pool = ProcessPool(max_workers=1, initializer=_limit_memory, initargs=(limits.memory_bytes,),
                                 context=multiprocessing.get_context("spawn"))  # forking torch is unsafe

    def load(self, suffix: str, data: bytes) -> Document:
        """`loaders.load` in the worker; LoadError on any failure, time-out or crash."""
        from pebble.common import ProcessExpired

        future = self._pool.schedule(_load, (suffix, data), timeout=self.limits.timeout_s)
        try:
            return future.result()
        except FutureTimeout:
            raise LoadError(f"parsing took longer than {self.limits.timeout_s:g} s; the file was skipped") from None
        except ProcessExpired as exc:
            raise LoadError(f"the parser crashed on this file (exit code {exc.exitcode}): out of memory past "
                            f"{self.limits.memory_bytes / 2**30:g} GiB, or a malformed file") from None
        except MemoryError:
            raise LoadError("parsing needed more memory than the limit allows") from None

    def close(self) -> None:
        self._pool.stop()
        self._pool.join()

    def __enter__(self) -> Parser:
        return self

    def __exit__(self, kind: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.close()
