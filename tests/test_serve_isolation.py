"""Isolation between collections, end to end: a real `rag serve` process (real models) over two
collections whose documents carry unique markers in their text and file names. A key granted only
`alpha` tries every endpoint against alpha and against bravo; bravo's markers, numbers, file names
and folders never appear in any response body or header, and every request for bravo answers
exactly what a request for a collection that does not exist answers. A key for bravo does see its
markers (so the checks can fail), and no key, an unknown key and a revoked key are refused."""

from __future__ import annotations

import json
import re
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import openai
import pytest

from rag.index import Index
from rag.server.keys import KeyStore
from tests.served import running

pytestmark = pytest.mark.slow

MAX_QUESTION = 300
TOPICS = {  # file stem -> text; "{m}" is the collection's marker, "{n}" its numbers
    "zephyr-limits": "# Zephyr account limits\n\nReference {m}. The daily transfer limit of the Zephyr account is "
                     "${n[0]}. Transfers above the limit need a branch visit in {town}.\n",
    "zephyr-fees": "# Zephyr account fees\n\nReference {m}. The Zephyr account costs ${n[1]} a month. Paper "
                   "statements from the {town} office are free.\n",
    "branch-hours": "# Branch hours\n\nReference {m}. The {town} branch opens at {n[2]} on weekdays and closes "
                    "at noon on Saturdays.\n",
}
ALPHA = {"m": "alpha-7f3k", "n": ("4,100", "3", "9 am"), "town": "Larkspur"}
BRAVO = {"m": "bravo-9q2z", "n": ("9,900", "8", "10 am"), "town": "Quokkaville"}
# Nothing of bravo may reach alpha's key: its marker (also in its file and folder names), numbers, town.
FORBIDDEN = ("9q2z", "9,900", "quokkaville", "$8 a month")
GHOST = "ghost"  # a collection that does not exist
ANSWERABLE = "What is the daily transfer limit of the Zephyr account?"
UNANSWERABLE = "Who painted the ceiling of the Sistine Chapel?"


@dataclass
class World:
    url: str
    root: Path
    corpus: dict[str, Path]
    keys: dict[str, str]  # alpha, bravo, revoked -> secret


def write_corpus(folder: Path, values: dict[str, Any]) -> None:
    folder.mkdir()
    for stem, text in TOPICS.items():
        (folder / f"{values['m']}-{stem}.md").write_text(text.format(**values))


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory, real_embedder: Any) -> Iterator[World]:
    root = tmp_path_factory.mktemp("isolation")
    corpus, collections = {}, {}
    for name, values in (("alpha", ALPHA), ("bravo", BRAVO)):
        corpus[name] = root / f"corpus-{values['m']}"
        write_corpus(corpus[name], values)
        index = root / f"index-{values['m']}"
        Index(index, embedder=real_embedder).ingest([corpus[name]], progress=False)
        collections[name] = (index, corpus[name])
    store = KeyStore(root / "keys.sqlite")
    secrets = {"alpha": store.create(["alpha"], "alpha")[1], "bravo": store.create(["bravo"], "bravo")[1]}
    revoked, secrets["revoked"] = store.create(["alpha"], "revoked")
    store.revoke(revoked.id)
    with running(collections, root / "keys.sqlite", root / "serve.log", "--max-question", str(MAX_QUESTION)) as url:
        yield World(url, root, corpus, secrets)


def leaks(text: str) -> list[str]:
    return [word for word in FORBIDDEN if word in text.lower()]


def check_clean(response: httpx.Response, echoed: str = "") -> httpx.Response:
    """No trace of bravo in the body or headers (`echoed`: the caller's own words, which may come back)."""
    headers = "\n".join(f"{k}: {v}" for k, v in response.headers.items())
    found = leaks(response.text.replace(echoed, "") if echoed else response.text) + leaks(headers)
    assert not found, f"{response.request.method} {response.request.url} leaked {found}: {response.text[:500]}"
    return response


class Caller:
    """HTTP as alpha's key, every response checked for bravo's traces."""

    def __init__(self, world: World, key: str | None) -> None:
        headers = {"Authorization": f"Bearer {key}"} if key else {}
        self.http = httpx.Client(base_url=world.url, headers=headers, timeout=180)

    def call(self, method: str, path: str, status: int, **kw: Any) -> httpx.Response:
        response = check_clean(self.http.request(method, path, **kw))
        assert response.status_code == status, f"{method} {path}: {response.status_code} {response.text[:500]}"
        return response

    def hidden(self, method: str, path: str, body: dict[str, Any] | None = None, status: int = 404,
               **kw: Any) -> None:
        """The request for bravo answers exactly as the same request for a collection that does not exist
        (404, or the same error for a bad field when the field is checked first)."""
        def send(name: str) -> httpx.Response:
            payload = json.loads(json.dumps(body).replace("bravo", name)) if body is not None else None
            return self.http.request(method, path.replace("bravo", name), json=payload, **kw)

        for_bravo, for_ghost = check_clean(send("bravo")), send(GHOST)
        assert for_bravo.status_code == for_ghost.status_code == status, (for_bravo.text, for_ghost.text)
        assert for_bravo.text.replace("bravo", GHOST) == for_ghost.text
        assert status != 404 or for_bravo.json()["error"]["message"] == "collection 'bravo' not found"
        same = {k: v for k, v in for_ghost.headers.items() if k not in ("date", "content-length")}
        assert {k: v for k, v in for_bravo.headers.items() if k in same} == same


@pytest.fixture
def alpha(world: World) -> Iterator[Caller]:
    caller = Caller(world, world.keys["alpha"])
    yield caller
    caller.http.close()


def files_under(root: Path) -> set[Path]:
    """Every file under `root` but the key store's (SQLite may add a journal beside it)."""
    return {p for p in root.rglob("*") if p.is_file() and not p.name.startswith("keys.sqlite")}


def openai_client(world: World, key: str) -> openai.OpenAI:
    return openai.OpenAI(base_url=f"{world.url}/v1", api_key=key, max_retries=0, timeout=180)


def sources(body: dict[str, Any]) -> set[str]:
    rows = body.get("hits", []) + body.get("citations", []) + body.get("closest", [])
    return {row["source"] for row in rows}


def test_bravo_is_really_there_for_its_own_key(world: World) -> None:
    """The checks below can fail: with bravo's key, bravo's markers are what search finds."""
    response = Caller(world, world.keys["bravo"]).http.post("/v1/search", json={"collection": "bravo",
                                                                                 "query": ANSWERABLE})
    assert response.status_code == 200 and leaks(response.text), response.text


def test_models_list_only_the_granted_collection(alpha: Caller) -> None:
    assert [m["id"] for m in alpha.call("GET", "/v1/models", 200).json()["data"]] == ["alpha"]
    alpha.hidden("GET", "/v1/models/bravo")


def test_search_in_every_mode(alpha: Caller) -> None:
    for mode in ("hybrid", "dense", "bm25"):
        hits = alpha.call("POST", "/v1/search", 200, json={"collection": "alpha", "query": ANSWERABLE, "k": 10,
                                                          "mode": mode}).json()["hits"]
        assert hits and all("alpha-7f3k" in h["text"] and "alpha-7f3k" in h["source"] for h in hits), hits
        alpha.hidden("POST", "/v1/search", {"collection": "bravo", "query": ANSWERABLE, "mode": mode})


def test_ask_as_json_and_as_events(alpha: Caller) -> None:
    body = alpha.call("POST", "/v1/ask", 200, json={"collection": "alpha", "question": ANSWERABLE}).json()
    assert all("alpha-7f3k" in s for s in sources(body)), body
    alpha.hidden("POST", "/v1/ask", {"collection": "bravo", "question": ANSWERABLE})
    stream = alpha.call("POST", "/v1/ask", 200, json={"collection": "alpha", "question": ANSWERABLE,
                                                      "stream": True})
    events = re.findall(r"^event: (\w+)$", stream.text, re.M)
    assert events[-1] == "final", stream.text
    alpha.hidden("POST", "/v1/ask", {"collection": "bravo", "question": ANSWERABLE, "stream": True})
    history = [{"role": "user", "content": "Tell me about the Zephyr account."},
               {"role": "assistant", "content": "It is an account."}]
    alpha.call("POST", "/v1/ask", 200, json={"collection": "alpha", "question": "And its daily limit?",
                                             "history": history})


def test_chat_through_the_openai_client(world: World, alpha: Caller) -> None:
    client = openai_client(world, world.keys["alpha"])
    messages: Any = [{"role": "user", "content": ANSWERABLE}]
    raw = client.chat.completions.with_raw_response.create(model="alpha", messages=messages)
    check_clean(raw.http_response)
    completion = raw.parse()
    assert completion.choices[0].finish_reason == "stop"
    assert all("alpha-7f3k" in s for s in sources(completion.model_extra["rag"]))
    raw_stream = client.chat.completions.with_raw_response.create(
        model="alpha", messages=messages, stream=True, stream_options={"include_usage": True})
    assert not leaks(str(raw_stream.headers))
    chunks = [chunk.model_dump_json() for chunk in raw_stream.parse()]
    assert not leaks("".join(chunks)) and any('"rag"' in chunk for chunk in chunks), chunks
    for stream in (False, True):
        with pytest.raises(openai.NotFoundError) as refused:
            client.chat.completions.create(model="bravo", messages=messages, stream=stream)
        check_clean(refused.value.response)
        alpha.hidden("POST", "/v1/chat/completions", {"model": "bravo", "messages": messages, "stream": stream})


def test_an_abstention_shows_only_its_own_closest_passages(world: World, alpha: Caller) -> None:
    body = alpha.call("POST", "/v1/ask", 200, json={"collection": "alpha", "question": UNANSWERABLE}).json()
    assert body["abstained"] and body["closest"], body
    assert all("alpha-7f3k" in c["text"] for c in body["closest"]), body["closest"]
    completion = openai_client(world, world.keys["alpha"]).chat.completions.create(
        model="alpha", messages=[{"role": "user", "content": UNANSWERABLE}])
    rag = completion.model_extra["rag"]
    assert rag["abstained"] and rag["closest"] and not leaks(json.dumps(rag)), rag


def test_documents_upload_delete_and_rebuild(world: World, alpha: Caller) -> None:
    listed = alpha.call("GET", "/v1/collections/alpha/documents", 200).json()["documents"]
    assert len(listed) == len(TOPICS) and all("alpha-7f3k" in d["path"] for d in listed), listed
    alpha.hidden("GET", "/v1/collections/bravo/documents")
    before = files_under(world.root)
    new = ("alpha-7f3k-new.md", b"# New\n\nReference alpha-7f3k. The Zephyr card is green.\n", "text/markdown")
    alpha.call("POST", "/v1/collections/alpha/documents", 201, files={"file": new})
    alpha.hidden("POST", "/v1/collections/bravo/documents", files={"file": new})
    outside = ("../../evil.md", b"# Evil\n\nwritten outside\n", "text/markdown")
    traversal = alpha.http.post("/v1/collections/alpha/documents", files={"file": outside})
    check_clean(traversal)
    added = files_under(world.root) - before
    assert all(p.is_relative_to(world.corpus["alpha"]) for p in added), added  # nothing written elsewhere
    bravo_file = next(world.corpus["bravo"].iterdir())
    escape = f"..%2F{world.corpus['bravo'].name}%2F{bravo_file.name}"  # alpha's corpus/../bravo's corpus/file
    check_clean(alpha.http.delete(f"/v1/collections/alpha/documents/{escape}"), echoed=escape.replace("%2F", "/"))
    assert bravo_file.exists()
    alpha.hidden("DELETE", f"/v1/collections/bravo/documents/{bravo_file.name}")
    assert bravo_file.exists()
    alpha.call("DELETE", "/v1/collections/alpha/documents/alpha-7f3k-branch-hours.md", 200)
    alpha.hidden("POST", "/v1/collections/bravo/rebuild")
    alpha.hidden("GET", "/v1/collections/bravo/rebuild")
    alpha.call("POST", "/v1/collections/alpha/rebuild", 202)
    deadline = time.monotonic() + 120
    while (job := alpha.call("GET", "/v1/collections/alpha/rebuild", 200).json())["status"] == "running":
        assert time.monotonic() < deadline, job
        time.sleep(0.5)
    assert job["status"] == "done", job
    paths = [d["path"] for d in alpha.call("GET", "/v1/collections/alpha/documents", 200).json()["documents"]]
    assert not any("branch-hours" in p for p in paths) and any("new" in p for p in paths), paths
    alpha.hidden("GET", "/v1/collections/bravo/documents")


def test_error_paths(alpha: Caller) -> None:
    bad_k = alpha.call("POST", "/v1/search", 422, json={"collection": "alpha", "query": "limit", "k": 0})
    assert bad_k.json()["error"]["param"] == "k"
    alpha.hidden("POST", "/v1/search", {"collection": "bravo", "query": "limit", "k": 0}, status=422)
    long = "Why " * (MAX_QUESTION // 4 + 1)
    assert alpha.call("POST", "/v1/ask", 422, json={"collection": "alpha", "question": long}
                      ).json()["error"]["param"] == "question"
    alpha.hidden("POST", "/v1/ask", {"collection": "bravo", "question": long})
    alpha.hidden("POST", "/v1/chat/completions", {"model": "bravo", "messages": [{"role": "user", "content": long}]})
    alpha.call("POST", "/v1/search", 422, content=b'{"collection": "bravo", "query": ',
               headers={"Content-Type": "application/json"})
    alpha.call("GET", "/v1/collections/alpha/rebuild/../../bravo/documents", 404)
    alpha.call("GET", "/v1/nothing-here", 404)


def test_open_endpoints_say_nothing_of_either_collection(alpha: Caller) -> None:
    for path in ("/health", "/docs", "/openapi.json"):
        alpha.call("GET", path, 200)
    metrics = alpha.call("GET", "/metrics", 200).text
    assert "rag_requests" in metrics and "alpha" not in metrics, metrics  # no collection name in any label


def test_keys_missing_unknown_and_revoked_are_refused(world: World) -> None:
    for key in (None, "rag-not-a-key", world.keys["revoked"]):
        caller = Caller(world, key)
        for method, path, body in (("GET", "/v1/models", None),
                                   ("POST", "/v1/search", {"collection": "alpha", "query": ANSWERABLE}),
                                   ("POST", "/v1/search", {"collection": "bravo", "query": ANSWERABLE})):
            response = caller.call(method, path, 401, json=body)
            assert not leaks(response.text) and "alpha-7f3k" not in response.text
    with pytest.raises(openai.AuthenticationError):
        openai_client(world, world.keys["revoked"]).chat.completions.create(
            model="alpha", messages=[{"role": "user", "content": ANSWERABLE}])
