"""Hostile callers of the served API, over real HTTP: the app (rag.server.app.create_app) on uvicorn
in a thread on a free loopback port, over small real indexes built with the fake embedder, with a
scripted generator that can be slowed and held (no models, so it runs in seconds).

Malformed JSON and multipart, oversized bodies (with and without Content-Length), questions over the
limit or too long for the model (alone, or written out from a conversation), unknown collections,
upload and delete names that try to leave the corpus, made-up request methods (metric labels), the
evidence header of the longest question, callers that hang up in the middle of a stream, and more
concurrent answers, rebuilds or requests than the queue, the rebuild lock or a key's rate allow: each
gets a clear error in OpenAI's shape or is served, nothing is written or deleted outside the corpus,
no request hangs, and the server keeps serving the next caller."""

from __future__ import annotations

import asyncio
import contextlib
import re
import shutil
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pytest
import uvicorn

from rag.generate.backends import Messages, Sampling
from rag.index import Index
from rag.reader import SpanReader
from rag.server.app import create_app
from rag.server.collections import Collection, Collections, Models
from rag.server.config import CollectionSpec, ServeConfig
from rag.server.keys import KeyStore, Rate
from tests.conftest import FakeEmbedder, Scripted
from tests.served import free_port
from tests.test_pipeline import FakeReader

MAX_BODY = 64 * 1024
MAX_QUESTION = 2000  # the server's default
QUEUE = 2  # answers waiting; one more is being answered
REPLY = "The daily limit is 3500 dollars per day for every verified account [1]."
CHAT: dict[str, Any] = {"model": "bank", "messages": [{"role": "user", "content": "What is the daily limit?"}]}


class Held(Scripted):
    """The scripted reply, a pause before each word, and a gate that holds every answer while closed;
    counts the answers begun and those run to their last word."""

    def __init__(self) -> None:
        super().__init__(REPLY)
        self.gate = threading.Event()
        self.gate.set()
        self.pause = 0.0
        self.begun = 0
        self.finished = 0

    def stream(self, messages: Messages, sampling: Sampling) -> Iterator[str]:
        self.begun += 1
        assert self.gate.wait(30), "held past the test's bound"
        for piece in super().stream(messages, sampling):
            time.sleep(self.pause)
            yield piece
        self.finished += 1


class Slow(FakeEmbedder):
    """The fake embedder, slowed by `pause` seconds a batch when a test wants a long rebuild."""

    pause = 0.0

    def embed(self, texts: Sequence[str], progress: Callable[[int], None] | None = None) -> np.ndarray:
        time.sleep(self.pause)
        return super().embed(texts, progress)


@dataclass
class Running:
    url: str
    root: Path
    corpus: Path
    generator: Held


NAMES = ("bank", "docs")


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory, tokenizer: Any) -> Path:
    """Two collections' corpora and indexes, built once; each test serves its own copy."""
    root = tmp_path_factory.mktemp("hostile")
    for name in NAMES:
        corpus = root / f"corpus-{name}"
        corpus.mkdir()
        (corpus / f"{name}.md").write_text(f"# Limits\n\nThe daily limit of {name} is 3500 dollars per day.\n")
        Index(root / f"index-{name}", embedder=FakeEmbedder(tokenizer)).ingest([corpus], progress=False)
    return root


@pytest.fixture
def server(built: Path, tmp_path: Path, tokenizer: Any) -> Iterator[Running]:
    with serving(built, tmp_path, tokenizer) as running:
        yield running


@contextlib.contextmanager
def serving(built: Path, tmp_path: Path, tokenizer: Any, queue: int = QUEUE,
            reader: SpanReader | None = None) -> Iterator[Running]:
    """A copy of `built` served with the held generator and `reader` (None: the generator answers alone)."""
    shutil.copytree(built, tmp_path, dirs_exist_ok=True)
    specs = [CollectionSpec(name, tmp_path / f"index-{name}", tmp_path / f"corpus-{name}") for name in NAMES]
    generator = Held()
    config = ServeConfig(specs, keys=tmp_path / "keys.sqlite", queue=queue, max_body=MAX_BODY,
                         max_question=MAX_QUESTION)

    def load() -> Collections:
        models = Models(generator, reader, None)
        return Collections([Collection(s, models, open_index=lambda path: Index(path, embedder=Slow(tokenizer)))
                            for s in specs])

    port = free_port()
    uv = uvicorn.Server(uvicorn.Config(create_app(config, load), host="127.0.0.1", port=port, log_level="warning"))
    thread = threading.Thread(target=uv.run, daemon=True)
    thread.start()
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 30
        while not healthy(url):
            assert time.monotonic() < deadline and thread.is_alive(), "the server did not become ready"
            time.sleep(0.05)
        yield Running(url, tmp_path, specs[0].corpus or tmp_path, generator)
    finally:
        generator.gate.set()
        uv.should_exit = True
        thread.join(15)


def healthy(url: str) -> bool:
    try:
        return httpx.get(f"{url}/health", timeout=2).status_code == 200
    except httpx.HTTPError:
        return False


def error(response: httpx.Response, status: int, param: str | None = "-") -> dict[str, Any]:
    """The response's error in OpenAI's shape, checked (and its `param`, unless "-")."""
    assert response.status_code == status, f"{response.status_code} {response.text[:300]}"
    body = response.json()["error"]
    assert set(body) == {"message", "type", "param", "code"} and body["message"], body
    assert param == "-" or body["param"] == param, body
    return dict(body)


def snapshot(root: Path, corpus: Path) -> dict[Path, bytes]:
    """Every file under `root` outside `corpus` and the indexes, with its bytes."""
    return {p: p.read_bytes() for p in root.rglob("*")
            if p.is_file() and not p.is_relative_to(corpus) and not p.name.startswith(("keys.sqlite", "index-"))
            and not any(part.startswith("index-") for part in p.relative_to(root).parts)}


def test_malformed_json_is_422_naming_the_body(server: Running) -> None:
    bodies = [b'{"collection": "bank", "query": ', b"not json at all", b"\xff\xfe\x00{", b"[1, 2]", b'"a string"',
              b"[" * 5000 + b"]" * 5000, b"{\"collection\": \"bank\", \"query\": \"\xff\"}",
              b"{\"collection\": \"bank\", \"query\": \"limit\"} trailing", b""]
    with httpx.Client(base_url=server.url, timeout=10) as client:
        for path in ("/v1/search", "/v1/ask", "/v1/chat/completions"):
            for body in bodies:
                response = client.post(path, content=body, headers={"Content-Type": "application/json"})
                assert error(response, 422)["param"] in ("body", "collection", "model"), (path, body[:20])
        typed = client.post("/v1/search", json={"collection": "bank", "query": "limit", "k": "five"})
        error(typed, 422, "k")
        error(client.post("/v1/search", json={"collection": 7, "query": "limit"}), 422, "collection")
        documents = "/v1/collections/bank/documents"
        for body, kind in ((b"--x\r\n", "multipart/form-data"), (b"no parts here", "multipart/form-data; boundary=zz"),
                           (b'{"file": "x.md"}', "application/json")):
            response = client.post(documents, content=body, headers={"Content-Type": kind})
            assert response.status_code in (400, 422), response.text  # refused, named, not a crash
            error(response, response.status_code)
        assert client.get("/health").status_code == 200


def test_oversized_bodies_are_413_with_or_without_a_length(server: Running) -> None:
    big = b'{"collection": "bank", "query": "' + b"x" * (MAX_BODY + 10) + b'"}'

    def chunked() -> Iterator[bytes]:  # no Content-Length: the limit must hold as the body arrives
        for start in range(0, len(big), 8192):
            yield big[start:start + 8192]

    with httpx.Client(base_url=server.url, timeout=10) as client:
        error(client.post("/v1/search", content=big, headers={"Content-Type": "application/json"}), 413, "body")
        streamed = client.post("/v1/search", content=chunked(), headers={"Content-Type": "application/json"})
        assert "content-length" not in streamed.request.headers
        error(streamed, 413, "body")
        upload = client.post("/v1/collections/bank/documents", files={"file": ("big.md", b"# a\n" * MAX_BODY)})
        error(upload, 413, "body")
        assert not (server.corpus / "uploads" / "big.md").exists()
        assert client.post("/v1/search", json={"collection": "bank", "query": "limit"}).status_code == 200


def test_questions_over_the_limit_name_their_field(server: Running) -> None:
    long = "why " * (MAX_QUESTION // 4 + 1)
    history = [{"role": "user", "content": "hello"}, {"role": "assistant", "content": "hi"}]
    with httpx.Client(base_url=server.url, timeout=10) as client:
        error(client.post("/v1/search", json={"collection": "bank", "query": long}), 422, "query")
        error(client.post("/v1/ask", json={"collection": "bank", "question": long}), 422, "question")
        chat = {"model": "bank", "messages": [*history, {"role": "user", "content": long}], "stream": True}
        response = error(client.post("/v1/chat/completions", json=chat), 422, "messages[2].content")
        assert str(MAX_QUESTION) in response["message"]
    assert server.generator.begun == 0


def test_a_long_earlier_message_is_refused_naming_it_not_a_crash(server: Running) -> None:
    """A follow-up is rewritten with the turns before it, so their length counts as the question's does."""
    earlier = "What is the daily limit of the account " + "with the blue card " * 3000 + "?"
    follow_up = "And for unverified ones?"
    chat = {"model": "bank", "messages": [{"role": "user", "content": earlier},
                                          {"role": "assistant", "content": "It is 3500 dollars."},
                                          {"role": "user", "content": follow_up}]}
    ask = {"collection": "bank", "question": follow_up, "history": [{"role": "user", "content": earlier}]}
    with httpx.Client(base_url=server.url, timeout=30) as client:
        error(client.post("/v1/chat/completions", json=chat), 422, "messages[0].content")
        error(client.post("/v1/ask", json=ask), 422, "history[0].content")


def conversation(first: str, follow_up: str, turns: int) -> list[dict[str, str]]:
    messages = [{"role": "user", "content": first}, {"role": "assistant", "content": "It is 3500 dollars."}]
    for _ in range(turns):
        messages += [{"role": "user", "content": follow_up}, {"role": "assistant", "content": "Yes."}]
    return [*messages, {"role": "user", "content": follow_up}]


def test_a_question_the_model_has_no_room_for_is_422_not_500(server: Running, monkeypatch: pytest.MonkeyPatch) -> None:
    """Each message within the limit, yet too many tokens for the model's window: alone (a generation server's
    window of 4,096 tokens holds 2,000 emoji no more than this fake's 300 hold 500 words), or written out
    from a conversation whose follow-ups the rule condenser joins to the question before them."""
    monkeypatch.setattr(server.generator, "context_tokens", 300)
    long = "why " * 499
    first = "What is the daily limit of " + "the blue card " * 15 + "accounts?"  # 52 words, 48 below: each fits
    chain = conversation(first, "What about " + "the red card " * 15 + "?", 8)  # written out: 430 words
    assert max(len(m["content"]) for m in chain) < MAX_QUESTION
    with httpx.Client(base_url=server.url, timeout=30) as client:
        error(client.post("/v1/ask", json={"collection": "bank", "question": long}), 422, "question")
        error(client.post("/v1/chat/completions", json=chat_of(long)), 422, "messages[0].content")
        error(client.post("/v1/chat/completions", json={"model": "bank", "messages": chain}), 422,
              f"messages[{len(chain) - 1}].content")


def chat_of(question: str) -> dict[str, Any]:
    return {"model": "bank", "messages": [{"role": "user", "content": question}]}


def test_callers_cannot_write_their_own_metric_labels(server: Running) -> None:
    """The request method is the caller's word: 200 made-up ones must not become 200 series in /metrics
    (memory without bound, and text of the caller's choosing shown to everyone who reads /metrics)."""
    with httpx.Client(base_url=server.url, timeout=10) as client:
        for n in range(200):
            assert client.request(f"PLANTED{n}", "/v1/models").status_code in (400, 405, 501)
        metrics = client.get("/metrics").text
    methods = set(re.findall(r'method="([^"]*)"', metrics))
    assert len(methods) <= 10 and not any("PLANTED" in m for m in methods), sorted(methods)[:20]


def test_the_evidence_header_stays_small_for_the_longest_question(server: Running) -> None:
    """X-RAG repeats the evidence as ASCII JSON, where a non-ASCII letter takes 6 to 12 characters:
    a question at the length limit must not make a header that proxies and clients refuse."""
    with httpx.Client(base_url=server.url, timeout=30) as client:
        for letter in ("x", "\u00e9", "\U0001f600"):
            question = letter * (MAX_QUESTION - 1)
            for stream in (False, True):
                response = client.post("/v1/chat/completions", json={
                    "model": "bank", "stream": stream, "messages": [{"role": "user", "content": question}]})
                assert response.status_code == 200, response.text[:300]
                assert len(response.headers["x-rag"]) <= 2 * 8192, (letter, len(response.headers["x-rag"]))


@pytest.mark.parametrize(("method", "path", "body"), [
    ("POST", "/v1/search", {"collection": "nowhere", "query": "limit"}),
    ("POST", "/v1/ask", {"collection": "nowhere", "question": "limit?", "stream": True}),
    ("POST", "/v1/chat/completions", {"model": "nowhere", "messages": CHAT["messages"], "stream": True}),
    ("GET", "/v1/models/nowhere", None),
    ("GET", "/v1/collections/nowhere/documents", None),
    ("DELETE", "/v1/collections/nowhere/documents/bank.md", None),
    ("POST", "/v1/collections/nowhere/rebuild", None),
    ("GET", "/v1/collections/nowhere/rebuild", None),
])
def test_unknown_collections_are_404(server: Running, method: str, path: str, body: Any) -> None:
    response = httpx.request(method, server.url + path, json=body, timeout=10)
    assert error(response, 404)["message"] == "collection 'nowhere' not found"


def multipart(filename: bytes, data: bytes) -> tuple[bytes, str]:
    """A multipart body whose file name is sent byte for byte (NULs, backslashes, absolute paths)."""
    boundary = "hostileboundary7"
    body = (f"--{boundary}\r\n".encode() + b'Content-Disposition: form-data; name="file"; filename="' + filename
            + b'"\r\nContent-Type: text/markdown\r\n\r\n' + data + f"\r\n--{boundary}--\r\n".encode())
    return body, f"multipart/form-data; boundary={boundary}"


UPLOAD_NAMES = [b"../x.md", b"../../x.md", b"/tmp/abs-x.md", b"..\\..\\x.md", b"sub/../../x.md", b"....//x.md",
                b"a\x00b.md", b"x.md\x00.sh", b"%2e%2e%2fx.md", b"..", b"/", b".md", b"../corpus-docs/docs.md"]


def test_upload_names_never_leave_the_corpus(server: Running) -> None:
    before = snapshot(server.root, server.corpus)
    uploads = (server.corpus / "uploads").resolve()
    with httpx.Client(base_url=server.url, timeout=10) as client:
        for name in UPLOAD_NAMES:
            body, kind = multipart(name, b"# Planted\n\nwritten by a hostile upload\n")
            response = client.post("/v1/collections/bank/documents", content=body, headers={"Content-Type": kind})
            if response.status_code == 201:  # kept under a plain name inside the corpus's uploads folder
                for saved in response.json()["saved"]:
                    path = (server.corpus / saved).resolve()
                    assert path.parent == uploads and path.is_file(), (name, saved)
            else:
                error(response, 422, "file")
    assert snapshot(server.root, server.corpus) == before
    assert not Path("/tmp/abs-x.md").exists()


def test_deletes_never_leave_the_corpus(server: Running) -> None:
    outside = server.root / "secret.md"
    outside.write_text("# Secret\n")
    (server.corpus / "link.md").symlink_to(outside)
    before = snapshot(server.root, server.corpus)
    names = ["..%2Fsecret.md", "..%2F..%2Fsecret.md", f"{outside}", "%2F" + str(outside).lstrip("/"),
             "link.md", "..%2Fcorpus-docs%2Fdocs.md", "uploads%2F..%2F..%2Fsecret.md", "%00", "."]
    with httpx.Client(base_url=server.url, timeout=10) as client:
        for name in names:
            response = client.delete(f"/v1/collections/bank/documents/{name}")
            assert response.status_code in (404, 405, 422), (name, response.status_code, response.text)
            error(response, response.status_code)
    assert snapshot(server.root, server.corpus) == before and outside.read_text() == "# Secret\n"
    assert (server.root / "corpus-docs" / "docs.md").exists()


async def first_line_then_hang_up(url: str, path: str, body: dict[str, Any]) -> str:
    """Start a streamed answer, read its first event, and drop the connection."""
    async with httpx.AsyncClient(base_url=url, timeout=30) as client, \
            client.stream("POST", path, json=body) as response:
        assert response.status_code == 200
        async for line in response.aiter_lines():
            if line:
                return line
    raise AssertionError("the stream sent nothing")


async def hang_up_while_answering(url: str, path: str, body: dict[str, Any], generator: Held) -> None:
    """Send a question and drop the connection once its answer is being made."""
    began = generator.begun
    async with httpx.AsyncClient(base_url=url, timeout=30) as client:
        asking = asyncio.create_task(client.post(path, json=body))
        deadline = time.monotonic() + 10
        while generator.begun == began:
            assert time.monotonic() < deadline and not asking.done(), "the answer never began"
            await asyncio.sleep(0.02)
        asking.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await asking


STREAMS: list[tuple[str, dict[str, Any]]] = [
    ("/v1/chat/completions", CHAT | {"stream": True}),
    ("/v1/ask", {"collection": "bank", "question": "What is the daily limit?", "stream": True})]


def test_a_caller_who_hangs_up_mid_stream_leaves_the_server_serving(server: Running) -> None:
    for path, body in STREAMS:
        assert asyncio.run(first_line_then_hang_up(server.url, path, body)).startswith(("data:", "event:"))
        served = httpx.post(f"{server.url}/v1/chat/completions", json=CHAT, timeout=30)
        assert served.status_code == 200 and served.json()["choices"][0]["message"]["content"], served.text


@pytest.mark.parametrize(("path", "body"), [*STREAMS, ("/v1/chat/completions", CHAT)])
def test_a_caller_who_hangs_up_while_answered_gives_up_its_question(server: Running, path: str,
                                                                   body: dict[str, Any]) -> None:
    server.generator.pause = 0.15  # 15 words: 2.3 s an answer, long enough to hang up in the middle
    asyncio.run(hang_up_while_answering(server.url, path, body, server.generator))
    started = time.monotonic()
    served = httpx.post(f"{server.url}/v1/chat/completions", json=CHAT, timeout=60)
    assert served.status_code == 200 and served.json()["choices"][0]["message"]["content"], served.text
    assert server.generator.finished == 1, "the answer of the caller who left was run to its end"
    assert time.monotonic() - started < 15


def test_a_caller_who_hangs_up_stops_an_answer_checked_by_a_reader(built: Path, tmp_path: Path,
                                                                  tokenizer: Any) -> None:
    """With a reader the pipeline yields nothing until the draft is generated and checked, so the
    question's generator itself must stop once its caller has gone."""
    with serving(built, tmp_path, tokenizer, reader=FakeReader("3500", 5.0)) as server:
        server.generator.pause = 0.3  # 15 words: 4.5 s an answer
        for path, body in [*STREAMS, ("/v1/chat/completions", CHAT)]:
            finished = server.generator.finished
            asyncio.run(hang_up_while_answering(server.url, path, body, server.generator))
            started = time.monotonic()
            served = httpx.post(f"{server.url}/v1/chat/completions", json=CHAT, timeout=60)
            assert served.status_code == 200 and "3500" in served.json()["choices"][0]["message"]["content"]
            assert server.generator.finished == finished + 1, f"{path}: the abandoned answer was run to its end"
            assert time.monotonic() - started < 4.5 + 3, f"{path}: the next question waited for the abandoned one"


async def many_at_once(url: str, n: int, body: dict[str, Any]) -> list[httpx.Response]:
    async with httpx.AsyncClient(base_url=url, timeout=30) as client:
        return list(await asyncio.gather(*(client.post("/v1/chat/completions", json=body) for _ in range(n))))


def test_more_answers_than_the_queue_holds_are_refused_at_once_never_hung(server: Running) -> None:
    n, held = 12, 2.0
    for stream in (False, True):
        server.generator.gate.clear()  # every answer waits until the excess has been refused
        threading.Timer(held, server.generator.gate.set).start()
        began = time.monotonic()
        responses = asyncio.run(many_at_once(server.url, n, CHAT | {"stream": stream}))
        assert time.monotonic() - began < held + 15
        statuses = sorted(r.status_code for r in responses)
        assert statuses == [200] * (QUEUE + 1) + [503] * (n - QUEUE - 1), statuses
        for refused in (r for r in responses if r.status_code == 503):
            assert error(refused, 503)["code"] == "queue_full" and int(refused.headers["Retry-After"]) >= 1
            assert refused.elapsed.total_seconds() < held  # refused at once, not after the wait
    assert httpx.get(f"{server.url}/health", timeout=5).status_code == 200


async def rebuilds_at_once(url: str, n: int) -> list[httpx.Response]:
    async with httpx.AsyncClient(base_url=url, timeout=30) as client:
        return list(await asyncio.gather(*(client.post("/v1/collections/bank/rebuild") for _ in range(n))))


def test_rebuilds_asked_at_once_run_once_and_searches_go_on(server: Running, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(Slow, "pause", 1.0)
    (server.corpus / "new.md").write_text("# New\n\nThe weekly limit of bank is 9000 dollars.\n")
    statuses = sorted(r.status_code for r in asyncio.run(rebuilds_at_once(server.url, 6)))
    assert statuses == [202] + [409] * 5, statuses
    with httpx.Client(base_url=server.url, timeout=30) as client:
        searched = 0
        while (job := client.get("/v1/collections/bank/rebuild").json())["status"] == "running":
            assert client.post("/v1/search", json={"collection": "bank", "query": "limit", "mode": "bm25"}
                               ).status_code == 200
            searched += 1
        assert job["status"] == "done" and "new.md" in job["report"]["added"] and searched, job
        hits = client.post("/v1/search", json={"collection": "bank", "query": "weekly limit", "mode": "bm25"}).json()
        assert hits["hits"][0]["source"] == "new.md", hits


async def searches_at_once(url: str, n: int, key: str) -> list[httpx.Response]:
    async with httpx.AsyncClient(base_url=url, timeout=30, headers={"Authorization": f"Bearer {key}"}) as client:
        body = {"collection": "bank", "query": "limit", "mode": "bm25"}
        return list(await asyncio.gather(*(client.post("/v1/search", json=body) for _ in range(n))))


def test_a_burst_past_a_keys_rate_is_429_with_retry_after(server: Running) -> None:
    _, key = KeyStore(server.root / "keys.sqlite").create(["bank"], "burst", Rate.parse("3/minute"))
    responses = asyncio.run(searches_at_once(server.url, 12, key))
    assert sorted(r.status_code for r in responses) == [200] * 3 + [429] * 9
    for refused in (r for r in responses if r.status_code == 429):
        assert error(refused, 429)["type"] == "rate_limit_error" and int(refused.headers["Retry-After"]) >= 1


async def asked_by(url: str, key: str, n: int) -> list[httpx.Response]:
    async with httpx.AsyncClient(base_url=url, timeout=30, headers={"Authorization": f"Bearer {key}"}) as client:
        return list(await asyncio.gather(*(client.post("/v1/chat/completions", json=CHAT) for _ in range(n))))


async def two_keys_at_once(url: str, greedy: str, other: str, late: float) -> tuple[list[httpx.Response], ...]:
    """`greedy` asks four questions at once; `other` asks one `late` seconds after."""
    async def later() -> list[httpx.Response]:
        await asyncio.sleep(late)
        return await asked_by(url, other, 1)

    return tuple(await asyncio.gather(asked_by(url, greedy, 4), later()))


def test_one_key_cannot_fill_the_queue_for_the_others(built: Path, tmp_path: Path, tokenizer: Any) -> None:
    with serving(built, tmp_path, tokenizer, queue=8) as server:
        store = KeyStore(server.root / "keys.sqlite")
        (_, greedy), (_, other) = store.create(["bank"], "greedy"), store.create(["bank"], "other")
        server.generator.gate.clear()  # every answer waits until the refusals have been seen
        held = 3.0
        threading.Timer(held, server.generator.gate.set).start()
        mine, theirs = asyncio.run(two_keys_at_once(server.url, greedy, other, late=0.5))
        assert sorted(r.status_code for r in mine) == [200, 200, 429, 429], [r.text[:200] for r in mine]
        for refused in (r for r in mine if r.status_code == 429):
            body = error(refused, 429)
            assert body["code"] == "too_many_questions" and int(refused.headers["Retry-After"]) >= 1
            assert "this key already has 2 questions waiting or being answered" in body["message"], body
            assert refused.elapsed.total_seconds() < held  # refused at once, not after the wait
        assert [r.status_code for r in theirs] == [200], theirs[0].text[:300]
        assert asyncio.run(asked_by(server.url, greedy, 1))[0].status_code == 200  # its share is free again
