"""Load on the served API: `rag serve` started on a free loopback port over a copy of an index,
driven by asyncio clients (httpx), every phase bounded in time and every request in seconds.

    python benchmarks/serve_load.py [--index indexes/default] [--seconds 60] [--search-clients 32]
        [--chat-clients 8] [--chat-seconds 180] [--chat-questions 24] [--queue 4]
        [--rebuild-files 12] [--rebuild-clients 8] [--json FILE]
    quick (about 20 s of load): --seconds 4 --chat-clients 2 --chat-questions 2 --chat-single 1
        --rebuild-files 4 --rebuild-clients 4

(a) POST /v1/search: one client, then --search-clients at once, for --seconds each: requests/s, p50,
    p95, errors (target 0).
(b) POST /v1/chat/completions streamed, over eval/demo-questions.jsonl: one client (--chat-single
    questions), then --chat-clients at once until --chat-questions are asked or --chat-seconds pass:
    first-token and total p50/p95, status counts (excess load is answered 429/503 with Retry-After,
    which the client waits before its next question), streams that were not well formed, and requests
    that hung (no answer within --hang-after seconds; target 0).
(c) A rebuild under load: a second collection over a copy of --rebuild-files demo documents; one is
    touched, POST .../rebuild, and --rebuild-clients search it until the rebuild is done: every
    response must be a 200 with k well-formed hits from that corpus (no request fails or sees a
    half-built index).
The server binds 127.0.0.1 only; the index and documents are copied to a temporary folder first.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import random
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import realdata  # noqa: F401 - puts the project on sys.path
from search import QUERIES

from rag.fsutil import read_jsonl
from rag.server.keys import KeyStore
from tests.served import child_env, running

ROOT = Path(__file__).resolve().parent.parent
HIT_FIELDS = {"rank", "score", "source", "page", "heading", "start", "end", "text", "dense_rank", "bm25_rank"}
K = 5


@dataclass
class Tally:
    """What one phase's clients saw."""

    latencies: list[float] = field(default_factory=list)
    first_tokens: list[float] = field(default_factory=list)
    statuses: Counter[str] = field(default_factory=Counter)
    errors: Counter[str] = field(default_factory=Counter)  # failed, malformed or hung, by kind
    seconds: float = 0.0

    def figures(self, clients: int) -> dict[str, Any]:
        return {"clients": clients, "requests": len(self.latencies), "seconds": round(self.seconds, 1),
                "per_s": round(len(self.latencies) / self.seconds, 2) if self.seconds else 0.0,
                **percentiles("", self.latencies), **percentiles("first_token_", self.first_tokens),
                "statuses": dict(self.statuses), "errors": sum(self.errors.values()), "error_kinds": dict(self.errors)}


def percentiles(prefix: str, values: list[float]) -> dict[str, float | None]:
    if not values:
        return {f"{prefix}p50_ms": None, f"{prefix}p95_ms": None} if prefix else {"p50_ms": None, "p95_ms": None}
    q = statistics.quantiles(values, n=100, method="inclusive") if len(values) > 1 else [values[0]] * 99
    return {f"{prefix}p50_ms": round(q[49] * 1000, 1), f"{prefix}p95_ms": round(q[94] * 1000, 1)}


async def clients(n: int, client: Callable[[int], Awaitable[None]]) -> float:
    began = time.perf_counter()
    await asyncio.gather(*(client(seed) for seed in range(n)))
    return time.perf_counter() - began


# -- (a) and (c): search --------------------------------------------------------------------------

def well_formed_hits(body: Any, sources: set[str] | None) -> str | None:
    """Why a search answer is not well formed (None when it is)."""
    hits = body.get("hits") if isinstance(body, dict) else None
    if not isinstance(hits, list) or len(hits) != K:
        return f"expected {K} hits"
    if any(set(hit) != HIT_FIELDS or not hit["text"] for hit in hits):
        return "a hit without its fields"
    if sources is not None and any(Path(hit["source"]).name not in sources for hit in hits):
        return "a hit from outside the collection's corpus"
    return None


async def search_load(http: httpx.AsyncClient, collection: str, n: int, until: Callable[[], bool],
                      sources: set[str] | None = None) -> Tally:
    tally = Tally()

    async def client(seed: int) -> None:
        queries = random.Random(seed).sample(QUERIES, len(QUERIES))
        asked = 0
        while not until():
            query = queries[asked % len(queries)]
            asked += 1
            began = time.perf_counter()
            try:
                response = await http.post("/v1/search", json={"collection": collection, "query": query, "k": K})
            except httpx.HTTPError as exc:
                tally.errors[type(exc).__name__] += 1
                continue
            tally.statuses[str(response.status_code)] += 1
            why = f"status {response.status_code}" if response.status_code != 200 else \
                well_formed_hits(response.json(), sources)
            if why:
                tally.errors[why] += 1
            else:
                tally.latencies.append(time.perf_counter() - began)

    tally.seconds = await clients(n, client)
    return tally


def for_seconds(seconds: float) -> Callable[[], bool]:
    deadline = time.monotonic() + seconds
    return lambda: time.monotonic() >= deadline


# -- (b): streamed chat ---------------------------------------------------------------------------

async def one_chat(http: httpx.AsyncClient, question: str, tally: Tally, hang_after: float, key: str) -> float:
    """Ask one streamed question with `key`; record it; the seconds to wait before the next (Retry-After)."""
    body = {"model": "demo", "stream": True, "messages": [{"role": "user", "content": question}]}
    began = time.perf_counter()
    first: float | None = None
    events: list[Any] = []
    try:
        async with asyncio.timeout(hang_after), http.stream("POST", "/v1/chat/completions", json=body,
                                                            headers={"Authorization": f"Bearer {key}"}) as response:
            tally.statuses[str(response.status_code)] += 1
            if response.status_code in (429, 503):
                await response.aread()
                return min(float(response.headers.get("Retry-After", "1")), 10.0)
            if response.status_code != 200:
                tally.errors[f"status {response.status_code}"] += 1
                return 0.0
            async for line in response.aiter_lines():
                if not line.startswith("data: "):
                    continue
                events.append(line[6:] if line == "data: [DONE]" else json.loads(line[6:]))
                if first is None and isinstance(events[-1], dict) and content_of(events[-1]):
                    first = time.perf_counter() - began
    except TimeoutError:
        tally.errors["hung"] += 1
        return 0.0
    except (httpx.HTTPError, json.JSONDecodeError) as exc:
        tally.errors[type(exc).__name__] += 1
        return 0.0
    why = well_formed_stream(events)
    if why:
        tally.errors[why] += 1
    else:
        tally.latencies.append(time.perf_counter() - began)
        tally.first_tokens.append(first if first is not None else tally.latencies[-1])
    return 0.0


def content_of(chunk: dict[str, Any]) -> str:
    choices = chunk.get("choices") or [{}]
    return str((choices[0].get("delta") or {}).get("content") or "")


def well_formed_stream(events: list[Any]) -> str | None:
    """Why a chat stream is not what docs/api.md says (None when it is)."""
    if not events or events[-1] != "[DONE]":
        return "a stream without [DONE]"
    chunks = [e for e in events[:-1] if isinstance(e, dict)]
    if any("error" in c for c in chunks):
        return "an error in the stream"
    finals = [c for c in chunks if c.get("choices") and c["choices"][0].get("finish_reason") == "stop"]
    if len(finals) != 1 or "rag" not in finals[0]:
        return "no single stop chunk with its rag field"
    return None


async def chat_load(http: httpx.AsyncClient, questions: list[str], n: int, most: int, seconds: float,
                    hang_after: float, keys: list[str]) -> Tally:
    """`n` clients, each with a key of its own (the server holds at most 2 answers a key: one shared key
    would measure that cap, not the queue)."""
    tally = Tally()
    asked = 0
    over = for_seconds(seconds)

    async def client(seed: int) -> None:
        nonlocal asked
        mine = random.Random(seed).sample(questions, len(questions))
        while asked < most and not over():
            asked += 1
            wait = await one_chat(http, mine[asked % len(mine)], tally, hang_after, keys[seed % len(keys)])
            await asyncio.sleep(wait)

    tally.seconds = await clients(n, client)
    return tally


# -- (c): a rebuild while searches are served -----------------------------------------------------

async def rebuild_under_load(http: httpx.AsyncClient, corpus: Path, n: int, limit: float) -> dict[str, Any]:
    """Searches run from a second before the rebuild starts to a second after it is published."""
    sources = {p.name for p in corpus.iterdir()}
    stop = asyncio.Event()
    searching = asyncio.create_task(search_load(http, "rebuild", n, stop.is_set, sources))
    await asyncio.sleep(1.0)
    touched = sorted(corpus.iterdir())[0]
    touched.write_text(touched.read_text() + f"\n\nUpdated for the load benchmark at {time.time():.0f}.\n")
    began = time.perf_counter()
    started = await http.post("/v1/collections/rebuild/rebuild")
    job, deadline = started.json(), time.monotonic() + limit
    while started.status_code == 202 and job.get("status") == "running" and time.monotonic() < deadline:
        await asyncio.sleep(0.2)
        job = (await http.get("/v1/collections/rebuild/rebuild")).json()
    rebuild_s = time.perf_counter() - began
    await asyncio.sleep(1.0)
    stop.set()
    tally = await searching
    if started.status_code != 202 or job.get("status") != "done":
        tally.errors[f"rebuild answered {started.status_code}, ended {job.get('status')}"] += 1
    report = job.get("report") or {}
    return tally.figures(n) | {"rebuild_s": round(rebuild_s, 1), "job": job.get("status"),
                               "updated": len(report.get("updated") or []), "chunks_total": report.get("chunks_total")}


# -- the run --------------------------------------------------------------------------------------

def prepare(args: argparse.Namespace, work: Path) -> dict[str, tuple[Path, Path | None]]:
    """A copy of the index (read-only collection `demo`) and a small indexed copy of demo documents
    (collection `rebuild`, writable)."""
    shutil.copytree(args.index, work / "index")
    corpus = work / "corpus"
    corpus.mkdir()
    for path in sorted((ROOT / "corpus" / "rho-bank").glob("*.md"))[:args.rebuild_files]:
        shutil.copy(path, corpus / path.name)
    subprocess.run([sys.executable, "-m", "rag", "ingest", str(corpus), "--index", str(work / "index-rebuild")],
                   env=child_env(), check=True, capture_output=True, timeout=600)
    return {"demo": (work / "index", None), "rebuild": (work / "index-rebuild", corpus)}


async def measure(url: str, keys: list[str], args: argparse.Namespace, corpus: Path) -> dict[str, Any]:
    questions = [row["question"] for row in read_jsonl(ROOT / "eval" / "demo-questions.jsonl")]
    limits = httpx.Limits(max_connections=max(args.search_clients, args.chat_clients, args.rebuild_clients) + 4)
    async with httpx.AsyncClient(base_url=url, headers={"Authorization": f"Bearer {keys[0]}"}, timeout=60,
                                 limits=limits) as http:
        figures: dict[str, Any] = {}
        for n in (1, args.search_clients):
            figures[f"search x{n}"] = (await search_load(http, "demo", n, for_seconds(args.seconds))).figures(n)
        for n, most in ((1, args.chat_single), (args.chat_clients, args.chat_questions)):
            tally = await chat_load(http, questions, n, most, args.chat_seconds, args.hang_after, keys)
            figures[f"chat x{n}"] = tally.figures(n)
        figures[f"rebuild + search x{args.rebuild_clients}"] = await rebuild_under_load(
            http, corpus, args.rebuild_clients, args.hang_after)
        return figures


def table(figures: dict[str, Any]) -> str:
    def ms(value: float | None) -> str:
        return "-" if value is None else f"{value:.0f} ms" if value >= 100 else f"{value:.1f} ms"

    rows = ["| phase | requests | req/s | p50 | p95 | first token p50 | first token p95 | statuses | errors |",
            "| --- | ---: | ---: | ---: | ---: | ---: | ---: | --- | ---: |"]
    for phase, f in figures.items():
        statuses = " ".join(f"{k}:{v}" for k, v in sorted(f["statuses"].items()))
        first = (ms(f["first_token_p50_ms"]), ms(f["first_token_p95_ms"])) if phase.startswith("chat") else ("", "")
        rows.append(f"| {phase} | {f['requests']} | {f['per_s']} | {ms(f['p50_ms'])} | {ms(f['p95_ms'])} | "
                    f"{first[0]} | {first[1]} | {statuses} | {f['errors']} |")
        if "job" in f:
            rows.append(f"\n{phase}: the rebuild ended {f['job']} in {f['rebuild_s']} s ({f['updated']} file updated, "
                        f"{f['chunks_total']} chunks)")
    return "\n".join(rows)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--index", type=Path, default=ROOT / "indexes" / "default", help="copied, never written")
    parser.add_argument("--seconds", type=float, default=60.0, help="per search phase")
    parser.add_argument("--search-clients", type=int, default=32)
    parser.add_argument("--chat-clients", type=int, default=8)
    parser.add_argument("--chat-single", type=int, default=4, help="questions asked by the single chat client")
    parser.add_argument("--chat-questions", type=int, default=24, help="questions asked by the concurrent clients")
    parser.add_argument("--chat-seconds", type=float, default=180.0, help="no question is started after this")
    parser.add_argument("--queue", type=int, default=4,
                        help="the server's --queue (4: 8 chat clients overflow it, so excess load is measured)")
    parser.add_argument("--rebuild-files", type=int, default=12)
    parser.add_argument("--rebuild-clients", type=int, default=8)
    parser.add_argument("--hang-after", type=float, default=300.0, help="seconds after which a request has hung")
    parser.add_argument("--json", type=Path, help="write the figures here")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="serve-load-") as tmp:
        work = Path(tmp)
        collections = prepare(args, work)
        store = KeyStore(work / "keys.sqlite")
        keys = [store.create(list(collections), f"load-{n}")[1] for n in range(max(1, args.chat_clients))]
        with running(collections, work / "keys.sqlite", work / "serve.log", "--queue", str(args.queue),
                     ready_within=600) as url:
            figures = asyncio.run(measure(url, keys, args, work / "corpus"))
    print(table(figures))
    if args.json:
        args.json.write_text(json.dumps({"args": {k: str(v) for k, v in vars(args).items()}, "figures": figures},
                                        indent=2) + "\n")
    return 1 if any(f["errors"] for f in figures.values()) else 0


if __name__ == "__main__":
    sys.exit(main())
