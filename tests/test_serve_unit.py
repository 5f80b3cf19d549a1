"""The served API in process, over real indexes built with a fake embedder and a scripted generator
(no models): keys, limits, errors in OpenAI's shape, isolation between collections, documents.
The real server process with the real models is tests/test_serve.py."""

from __future__ import annotations

import json
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from rag.generate.backends import Messages, Sampling
from rag.generate.prompt import ABSTAIN
from rag.index import Index
from rag.server.app import create_app
from rag.server.collections import Collection, Collections, Models
from rag.server.config import CollectionSpec, ConfigError, ServeConfig, load_toml
from rag.server.keys import KeyStore, Rate
from rag.server.limits import AnswerQueue, KeyBusy, QueueFull
from rag.server.run import refusal
from tests.conftest import FakeEmbedder, rag_env

MARKERS = {"bank": "zebracrumb", "docs": "quokkastone"}
FILES = {"bank": "limits-bank.md", "docs": "manual-docs.md"}


class FakeGenerator:
    """Answers with the first passage's marker, refuses a question about "unanswerable", and can be held."""

    name = "fake"
    markers = True
    context_tokens = 10_000

    def __init__(self) -> None:
        self.hold = threading.Event()
        self.hold.set()
        self.started = threading.Event()

    def count_tokens(self, messages: Messages) -> int:
        return sum(len(m["content"].split()) for m in messages)

    def stream(self, messages: Messages, sampling: Sampling) -> Iterator[str]:
        self.started.set()
        self.hold.wait(10)
        if "unanswerable" in messages[-1]["content"]:
            yield ABSTAIN
            return
        yield from ["The daily limit ", "is 3500 ", "[1]."]


@pytest.fixture
def serve(tmp_path: Path, tokenizer: Any) -> Iterator[Callable[..., tuple[TestClient, FakeGenerator]]]:
    """Starts apps over two small indexes, each of one corpus whose text carries its collection's marker."""
    clients: list[TestClient] = []
    for name, marker in MARKERS.items():
        corpus = tmp_path / f"corpus-{name}"
        corpus.mkdir()
        (corpus / FILES[name]).write_text(f"# Limits\n\nThe daily limit is 3500 {marker} dollars per day.\n")
        Index(tmp_path / f"index-{name}", embedder=FakeEmbedder(tokenizer)).ingest([corpus], progress=False)

    def start(queue: int = 8, max_body: int = 25 * 2**20, corpus: bool = True,
              load: Callable[[], object] = lambda: None, host: str = "127.0.0.1") -> tuple[TestClient, FakeGenerator]:
        generator = FakeGenerator()
        models = Models(generator, None, None)
        specs = [CollectionSpec(n, tmp_path / f"index-{n}", (tmp_path / f"corpus-{n}") if corpus else None)
                 for n in MARKERS]
        config = ServeConfig(specs, host=host, keys=tmp_path / "keys.sqlite", queue=queue, max_body=max_body,
                             max_question=200)

        def loaded() -> Collections:
            load()
            return Collections([Collection(s, models, open_index=lambda p: Index(p, embedder=FakeEmbedder(tokenizer)))
                                for s in specs])

        client = TestClient(create_app(config, loaded), raise_server_exceptions=False)
        client.__enter__()
        clients.append(client)
        return client, generator

    yield start
    for client in clients:
        client.__exit__(None, None, None)


def ready(client: TestClient) -> TestClient:
    for _ in range(200):
        if client.get("/health").status_code == 200:
            return client
        time.sleep(0.02)
    raise AssertionError(client.get("/health").json())


def chat(model: str, question: str = "What is the daily limit?", **extra: Any) -> dict[str, Any]:
    return {"model": model, "messages": [{"role": "user", "content": question}], **extra}


def error(response: Any, status: int) -> dict[str, Any]:
    """The OpenAI-shaped error of `response`, checked."""
    assert response.status_code == status, response.text
    body = response.json()["error"]
    assert set(body) == {"message", "type", "param", "code"}
    return dict(body)


def key(tmp_path: Path, *collections: str, rate: str | None = None) -> dict[str, str]:
    _, secret = KeyStore(tmp_path / "keys.sqlite").create(list(collections), rate=Rate.parse(rate) if rate else None)
    return {"Authorization": f"Bearer {secret}"}


def test_health_says_loading_until_the_collections_are_loaded(serve: Callable[..., Any]) -> None:
    gate = threading.Event()
    client, _ = serve(load=lambda: gate.wait(10))
    assert client.get("/health").status_code == 503 and client.get("/health").json() == {"status": "loading"}
    assert error(client.get("/v1/models"), 503)["code"] == "loading"
    gate.set()
    assert ready(client).get("/health").json() == {"status": "ready", "collections": 2}


def test_a_failed_load_is_told_without_its_reason(serve: Callable[..., Any], caplog: pytest.LogCaptureFixture) -> None:
    """/health needs no key, so it must not name an index (the log does)."""

    def broken() -> None:
        raise FileNotFoundError("no index at /secret/index-of-bank")

    client, _ = serve(load=broken)
    for _ in range(100):
        if client.get("/health").json()["status"] != "loading":
            break
        time.sleep(0.02)
    health = client.get("/health")
    assert health.status_code == 503 and health.json()["status"] == "failed" and "secret" not in health.text
    assert "secret" not in client.get("/v1/models").text and "/secret/index-of-bank" in caplog.text


def test_an_open_loopback_server_answers_chat_with_its_evidence(serve: Callable[..., Any]) -> None:
    client = ready(serve()[0])
    assert client.get("/docs").status_code == 200 and "/v1/chat/completions" in client.get("/openapi.json").text
    assert [m["id"] for m in client.get("/v1/models").json()["data"]] == ["bank", "docs"]
    body = client.post("/v1/chat/completions", json=chat("bank", temperature=0.3, max_tokens=9)).json()
    assert body["object"] == "chat.completion" and body["model"] == "bank"
    [choice] = body["choices"]
    assert choice["message"] == {"role": "assistant", "content": "The daily limit is 3500 [1]."}
    assert choice["finish_reason"] == "stop"
    assert body["usage"]["total_tokens"] == body["usage"]["prompt_tokens"] + body["usage"]["completion_tokens"] > 0
    [citation] = body["rag"]["citations"]
    assert citation["source"].endswith(FILES["bank"]) and citation["marker"] == 1
    assert body["rag"]["abstained"] is False and body["rag"]["question"] == "What is the daily limit?"


def test_a_stream_sends_the_final_text_then_the_evidence_usage_and_done(serve: Callable[..., Any]) -> None:
    client = ready(serve()[0])
    response = client.post("/v1/chat/completions", json=chat("bank", stream=True,
                                                             stream_options={"include_usage": True}))
    lines = [line[6:] for line in response.text.splitlines() if line.startswith("data: ")]
    assert lines[-1] == "[DONE]"
    chunks = [json.loads(line) for line in lines[:-1]]
    text = "".join(c["choices"][0]["delta"].get("content", "") for c in chunks if c["choices"])
    assert text == "The daily limit is 3500 [1]."
    final = [c for c in chunks if c["choices"] and c["choices"][0]["finish_reason"] == "stop"]
    assert len(final) == 1 and final[0]["rag"]["citations"][0]["source"].endswith(FILES["bank"])
    assert chunks[-1]["choices"] == [] and chunks[-1]["usage"]["completion_tokens"] > 0


def test_an_abstention_names_its_reason_and_the_closest_passages(serve: Callable[..., Any]) -> None:
    client = ready(serve()[0])
    body = client.post("/v1/ask", json={"collection": "bank", "question": "An unanswerable question?"}).json()
    assert body["answer"] == ABSTAIN and body["abstained"] and body["abstain_reason"] == "model_abstained"
    assert body["abstain_message"] and body["closest"][0]["source"].endswith(FILES["bank"])
    events = client.post("/v1/ask", json={"collection": "bank", "question": "What is the limit?", "stream": True}).text
    names = [line[7:] for line in events.splitlines() if line.startswith("event: ")]
    assert names[0] == "delta" and "sentence" in names and names[-1] == "final"


def test_keys_missing_wrong_and_revoked_are_refused(serve: Callable[..., Any], tmp_path: Path) -> None:
    client = ready(serve()[0])
    granted = key(tmp_path, "bank")
    assert error(client.get("/v1/models"), 401)["code"] == "missing_api_key"
    assert error(client.get("/v1/models", headers={"Authorization": "Bearer rag-wrong"}), 401)
    assert [m["id"] for m in client.get("/v1/models", headers=granted).json()["data"]] == ["bank"]
    store = KeyStore(tmp_path / "keys.sqlite")
    other = key(tmp_path, "docs")  # one active key stays, so keys are still required
    store.revoke(store.list()[0].id)
    assert error(client.get("/v1/models", headers=granted), 401)
    assert client.get("/v1/models", headers=other).status_code == 200
    assert client.get("/health").status_code == 200 and client.get("/metrics").status_code == 200  # no key needed


def test_an_ungranted_collection_answers_exactly_as_an_unknown_one(serve: Callable[..., Any], tmp_path: Path) -> None:
    client = ready(serve()[0])
    headers = key(tmp_path, "bank")
    for name in ("docs", "nothing"):
        calls = [client.post("/v1/chat/completions", json=chat(name), headers=headers),
                 client.post("/v1/search", json={"collection": name, "query": "limit"}, headers=headers),
                 client.get(f"/v1/collections/{name}/documents", headers=headers),
                 client.post(f"/v1/collections/{name}/rebuild", headers=headers)]
        for response, param in zip(calls, ["model", "collection", None, None], strict=True):
            assert error(response, 404) == {"message": f"collection '{name}' not found",
                                             "type": "invalid_request_error", "param": param,
                                             "code": "model_not_found"}


def test_a_key_never_sees_another_collections_text_or_names(serve: Callable[..., Any], tmp_path: Path) -> None:
    client = ready(serve()[0])
    headers = key(tmp_path, "bank")
    seen = [client.get("/v1/models", headers=headers),
            client.post("/v1/search", json={"collection": "bank", "query": "daily limit quokkastone"},
                        headers=headers),
            client.post("/v1/ask", json={"collection": "bank", "question": "unanswerable quokkastone?"},
                        headers=headers),
            client.post("/v1/chat/completions", json=chat("bank", stream=True), headers=headers),
            client.get("/v1/collections/bank/documents", headers=headers),
            client.post("/v1/chat/completions", json=chat("docs"), headers=headers),
            client.get("/metrics")]
    text = "".join(r.text for r in seen)
    assert MARKERS["bank"] in text and FILES["bank"] in text
    assert "quokkastone dollars" not in text and FILES["docs"] not in text and '"docs"' not in text
    assert 'collection="' not in client.get("/metrics").text


def test_the_rate_limit_answers_429_with_retry_after(serve: Callable[..., Any], tmp_path: Path) -> None:
    client = ready(serve()[0])
    headers = key(tmp_path, "bank", rate="2/minute")
    assert all(client.get("/v1/models", headers=headers).status_code == 200 for _ in range(2))
    refused = client.get("/v1/models", headers=headers)
    assert error(refused, 429)["type"] == "rate_limit_error" and int(refused.headers["Retry-After"]) >= 1


def test_a_full_queue_answers_503_at_once(serve: Callable[..., Any]) -> None:
    client, generator = serve(queue=0)
    ready(client)
    generator.hold.clear()
    first: list[Any] = []
    worker = threading.Thread(target=lambda: first.append(client.post("/v1/chat/completions", json=chat("bank"))))
    worker.start()
    assert generator.started.wait(10)
    began = time.monotonic()
    refused = client.post("/v1/chat/completions", json=chat("bank"))
    assert error(refused, 503)["code"] == "queue_full" and int(refused.headers["Retry-After"]) >= 1
    assert time.monotonic() - began < 2
    generator.hold.set()
    worker.join(10)
    assert first[0].status_code == 200
    assert client.post("/v1/chat/completions", json=chat("bank")).status_code == 200  # the slot is free again


def test_a_key_holds_at_most_its_share_of_the_queue_and_gets_it_back() -> None:
    queue = AnswerQueue(waiting=3, per_key=2)
    gate = threading.Event()
    try:
        mine = [queue.submit(lambda: gate.wait(10), "k1") for _ in range(2)]
        with pytest.raises(KeyBusy) as busy:
            queue.submit(lambda: True, "k1")
        assert busy.value.status == 429 and busy.value.retry_after and "already has 2 questions" in busy.value.message
        others = [queue.submit(lambda: gate.wait(10), None),  # a key-less server's callers are not capped
                  queue.submit(lambda: gate.wait(10), "k2")]
        with pytest.raises(KeyBusy):  # the key's cap is told before the full queue
            queue.submit(lambda: True, "k1")
        with pytest.raises(QueueFull):
            queue.submit(lambda: True, "k3")
        gate.set()
        assert all(f.result(10) for f in mine + others)  # answered in turn: k1's were done before the last
        assert queue.submit(lambda: True, "k1").result(10)
    finally:
        gate.set()
        queue.close()


def test_bad_requests_name_the_field(serve: Callable[..., Any]) -> None:
    client = ready(serve(max_body=2000)[0])
    too_big = client.post("/v1/search", json={"collection": "bank", "query": "x" * 3000})
    assert error(too_big, 413)["param"] == "body"
    chunked = client.post("/v1/search", content=iter([b"x" * 1500] * 2), headers={"Content-Type": "application/json"})
    assert "over the limit of 2000 bytes" in error(chunked, 413)["message"]  # no Content-Length: counted as it comes
    malformed = client.post("/v1/chat/completions", content=b'{"model": "bank", "messages": [',
                            headers={"Content-Type": "application/json"})
    assert "not valid JSON" in error(malformed, 422)["message"]
    assert error(client.post("/v1/chat/completions", json={"model": "bank"}), 422)["param"] == "messages"
    missing = client.post("/v1/chat/completions", json={"model": "bank", "messages": [{"content": "hi"}]})
    assert error(missing, 422)["param"] == "messages[0].role"
    long = client.post("/v1/chat/completions", json=chat("bank", "why " * 60))
    assert error(long, 422)["param"] == "messages[0].content" and "over the limit of 200" in long.text
    assert error(client.post("/v1/ask", json={"collection": "bank", "question": "q" * 201}), 422)["param"] == "question"
    assert error(client.post("/v1/search", json={"collection": "bank", "query": "x", "k": 0}), 422)["param"] == "k"
    assert error(client.get("/v1/nothing"), 404)["code"] == "not_found"


def test_documents_are_uploaded_listed_removed_and_rebuilt(serve: Callable[..., Any]) -> None:
    client = ready(serve()[0])
    files = [("file", ("../../etc/evil.md", b"# Evil\n\nA new fact: the fee is 7 pelicans.\n")),
             ("file", ("run.exe", b"MZ"))]
    saved = client.post("/v1/collections/bank/documents", files=files).json()
    assert saved["saved"] == ["uploads/evil.md"] and "run.exe" in saved["refused"][0]["error"]
    rows = {d["path"]: d["status"] for d in client.get("/v1/collections/bank/documents").json()["documents"]}
    assert rows == {FILES["bank"]: "indexed", "uploads/evil.md": "not indexed"}
    job = client.post("/v1/collections/bank/rebuild")
    assert job.status_code == 202 and job.json()["status"] == "running"
    for _ in range(300):
        state = client.get("/v1/collections/bank/rebuild").json()
        if state["status"] != "running":
            break
        time.sleep(0.05)
    assert state["status"] == "done" and state["report"]["added"] == ["uploads/evil.md"], state
    hits = client.post("/v1/search", json={"collection": "bank", "query": "pelicans fee"}).json()["hits"]
    assert hits[0]["source"] == "uploads/evil.md"
    assert client.delete("/v1/collections/bank/documents/uploads/evil.md").status_code == 200
    assert error(client.delete("/v1/collections/bank/documents/../../x.md"), 404)


def test_a_collection_without_corpus_is_read_only(serve: Callable[..., Any]) -> None:
    client = ready(serve(corpus=False)[0])
    assert error(client.post("/v1/collections/bank/rebuild"), 409)["code"] == "read_only"
    assert error(client.post("/v1/collections/bank/documents", files=[("file", ("a.md", b"# a"))]), 409)


def test_config_from_flags_and_toml_names_what_is_wrong(tmp_path: Path) -> None:
    assert CollectionSpec.parse("bank=indexes/bank:corpus/bank") == CollectionSpec(
        "bank", Path("indexes/bank"), Path("corpus/bank"))
    with pytest.raises(ConfigError, match="--collection 'bank': expected NAME=INDEX"):
        CollectionSpec.parse("bank")
    with pytest.raises(ConfigError, match="collection name 'b/a'"):
        CollectionSpec.parse("b/a=x")
    toml = tmp_path / "serve.toml"
    toml.write_text('port = 9000\n[collections]\nbank = "indexes/bank"\ndocs = { index = "i", corpus = "c" }\n')
    config = load_toml(toml)
    assert config.port == 9000 and [c.name for c in config.collections] == ["bank", "docs"]
    toml.write_text('port = "x"\n')
    with pytest.raises(ConfigError, match="port must be a int"):
        load_toml(toml)
    toml.write_text('colections = {}\n')
    with pytest.raises(ConfigError, match="unknown key 'colections'"):
        load_toml(toml)


def test_a_public_address_is_refused_without_keys(tmp_path: Path) -> None:
    config = ServeConfig([CollectionSpec("bank", tmp_path)], host="0.0.0.0", keys=tmp_path / "keys.sqlite")
    assert "refusing to listen on 0.0.0.0" in (refusal(config) or "")
    assert refusal(ServeConfig([CollectionSpec("bank", tmp_path)], keys=tmp_path / "keys.sqlite")) is None
    run = subprocess.run([sys.executable, "-m", "rag", "serve", "--host", "0.0.0.0", "--collection", f"bank={tmp_path}",
                          "--keys", str(tmp_path / "keys.sqlite")], env=rag_env(), capture_output=True, text=True,
                         timeout=60)
    assert run.returncode == 2 and "refusing to listen on 0.0.0.0" in run.stderr and "rag keys create" in run.stderr
    KeyStore(tmp_path / "keys.sqlite").create(["bank"])
    assert refusal(config) is None


def test_a_public_server_never_opens_when_its_last_key_is_revoked_or_its_store_removed(
        tmp_path: Path, serve: Callable[..., Any]) -> None:
    store = KeyStore(tmp_path / "keys.sqlite")
    made, secret = store.create(["bank"])
    client = ready(serve(host="0.0.0.0")[0])
    assert client.get("/v1/models", headers={"Authorization": f"Bearer {secret}"}).status_code == 200
    store.revoke(made.id)
    assert error(client.get("/v1/models"), 401)["code"] == "missing_api_key"
    (tmp_path / "keys.sqlite").unlink()
    assert error(client.post("/v1/search", json={"collection": "bank", "query": "limit"}), 401)
    assert "zebracrumb" not in client.post("/v1/search", json={"collection": "bank", "query": "limit"}).text


def test_collections_may_not_share_or_nest_their_folders(tmp_path: Path) -> None:
    """A key for one collection would list, delete or (by a rebuild) index the other's files."""
    for folder in ("i1", "i2", "c1/inner"):
        (tmp_path / folder).mkdir(parents=True)

    def spec(name: str, index: str, corpus: str | None = None) -> CollectionSpec:
        return CollectionSpec(name, tmp_path / index, tmp_path / corpus if corpus else None)

    refused = {"the same index": [spec("a", "i1"), spec("b", "i1")],
               "a corpus inside another": [spec("a", "i1", "c1"), spec("b", "i2", "c1/inner")],
               "an index inside its corpus": [spec("a", "c1/inner", "c1")],
               "an index inside another's corpus": [spec("a", "i1", "c1"), spec("b", "c1/inner")]}
    for case, specs in refused.items():
        with pytest.raises(ConfigError, match="overlap|lies inside its corpus"):
            ServeConfig(specs).check()
            pytest.fail(f"{case} was accepted")
    ServeConfig([spec("a", "i1", "c1"), spec("b", "i2")]).check()


def test_a_follow_up_is_answered_as_the_question_it_stands_for(serve: Callable[..., Any]) -> None:
    client = ready(serve()[0])
    messages = [{"role": "system", "content": "Be brief."},
                {"role": "user", "content": "What is the daily limit for verified accounts?"},
                {"role": "assistant", "content": "The daily limit is 3500 [1]."},
                {"role": "user", "content": "And for unverified ones?"}]
    rag = client.post("/v1/chat/completions", json={"model": "bank", "messages": messages}).json()["rag"]
    assert rag["asked"] == "And for unverified ones?" and "unverified" in rag["question"]
    assert rag["question"] != rag["asked"] and "daily limit" in rag["question"]
    body = client.post("/v1/ask", json={"collection": "bank", "question": "And for unverified ones?",
                                        "history": messages[1:3]}).json()
    assert body["question"] == rag["question"]
    bad = client.post("/v1/ask", json={"collection": "bank", "question": "x", "history": [{"role": "system",
                                                                                           "content": "x"}]})
    assert error(bad, 422)["param"] == "history[0].role"


def test_a_missing_index_folder_is_named_before_the_server_starts(tmp_path: Path) -> None:
    run = subprocess.run([sys.executable, "-m", "rag", "serve", "--collection", f"bank={tmp_path / 'nope'}"],
                         env=rag_env(), capture_output=True, text=True, timeout=60)
    assert run.returncode == 2
    assert f"collection 'bank': its index folder {tmp_path / 'nope'} does not exist" in run.stderr


def test_the_evidence_header_stays_small() -> None:
    from rag.server.payloads import HEADER_MAX, header

    passage = {"source": "a.md", "page": None, "start": 0, "end": 5000, "text": "é" * 5000, "score": 0.1}
    evidence = {"question": "q", "citations": [{"quote": "x" * 100}] * 60, "sentences": [{"text": "s"}],
                "closest": [passage] * 3}
    text = header(evidence)
    assert text.isascii() and len(text) < 2 * HEADER_MAX and json.loads(text)["truncated"] is True
    small = json.loads(header(evidence | {"citations": []}))
    assert len(small["closest"][0]["text"]) == 300 and "truncated" not in small


def test_flags_win_over_the_config_file_and_rag_keys_over_the_default(tmp_path: Path) -> None:
    import argparse

    from rag.server.run import add_arguments, config_from
    from rag.settings import Settings

    for name in ("a", "b", "c"):
        (tmp_path / name).mkdir()
    toml = tmp_path / "serve.toml"
    toml.write_text(f'port = 9000\nqueue = 3\n[collections]\nbank = "{tmp_path / "a"}"\ndocs = "{tmp_path / "b"}"\n')
    parser = argparse.ArgumentParser()
    add_arguments(parser)
    args = parser.parse_args(["--config", str(toml), "--queue", "5", "--collection", f"bank={tmp_path / 'c'}"])
    config = config_from(args, Settings(keys=str(tmp_path / "env-keys.sqlite")))
    assert (config.port, config.queue, config.keys) == (9000, 5, tmp_path / "env-keys.sqlite")
    assert {c.name: c.index for c in config.collections} == {"bank": tmp_path / "c", "docs": tmp_path / "b"}
    flagged = config_from(parser.parse_args(["--config", str(toml), "--keys", "k.sqlite"]), Settings(keys="x"))
    assert flagged.keys == Path("k.sqlite")


def test_collections_over_one_model_share_one_embedder(tmp_path: Path, tokenizer: Any,
                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    """Two collections built with the same model, and a rebuild of one, load the model once."""
    from rag.server import collections

    made: list[tuple[str, str]] = []

    def make(name: str, backend: str) -> FakeEmbedder:
        made.append((name, backend))
        return FakeEmbedder(tokenizer, name)

    monkeypatch.setattr(collections, "make_embedder", make)
    corpora = {}
    for name, marker in MARKERS.items():
        corpora[name] = tmp_path / f"corpus-{name}"
        corpora[name].mkdir()
        (corpora[name] / FILES[name]).write_text(f"# Limits\n\nThe daily limit is 3500 {marker} dollars.\n")
        Index(tmp_path / name, embedder=FakeEmbedder(tokenizer)).ingest([corpora[name]], progress=False)
    shared = collections.SharedEmbedders()
    bank, docs, writer = shared.open(tmp_path / "bank"), shared.open(tmp_path / "docs"), shared.open(tmp_path / "bank")
    assert MARKERS["bank"] in bank.search("daily limit", 1, "dense")[0].text
    assert MARKERS["docs"] in docs.search("daily limit", 1, "dense")[0].text
    assert writer.ingest([corpora["bank"]], progress=False).unchanged == 1
    assert made == [("fake-hash", "fake")]


def test_a_request_without_a_valid_key_is_refused_before_its_body_is_read(tmp_path: Path,
                                                                          serve: Callable[..., Any]) -> None:
    """FastAPI reads a body before any dependency runs: the key is checked first, so a caller with no key
    cannot make the server parse an upload (the body below is not even multipart)."""
    KeyStore(tmp_path / "keys.sqlite").create(["bank"])
    client = ready(serve()[0])
    read: list[int] = []

    def body() -> Iterator[bytes]:
        for _ in range(4):
            read.append(1)
            yield b"x" * 2**20

    response = client.post("/v1/collections/bank/documents", content=body(),
                           headers={"Content-Type": "multipart/form-data; boundary=b", "Authorization": "Bearer no"})
    assert error(response, 401) and len(read) <= 1


def test_a_request_looks_its_key_up_once(tmp_path: Path, serve: Callable[..., Any],
                                         monkeypatch: pytest.MonkeyPatch) -> None:
    """The middleware that checks a key before the body leaves it for the route: one key-store lookup each."""
    headers = key(tmp_path, "bank")
    client = ready(serve()[0])
    calls: list[str] = []
    verify = KeyStore.verify

    def counted(self: KeyStore, secret: str) -> Any:
        calls.append(secret)
        return verify(self, secret)

    monkeypatch.setattr(KeyStore, "verify", counted)
    assert client.post("/v1/search", json={"collection": "bank", "query": "limit"}, headers=headers).status_code == 200
    assert len(calls) == 1
