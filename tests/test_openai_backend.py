"""The OpenAI-compatible backend against a small local server: streaming, errors, timeouts."""

from __future__ import annotations

import json
import socket
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import ClassVar

import pytest

from rag.generate import backends
from rag.generate.backends import GeneratorError, GeneratorSpec, OpenAIChatGenerator, Sampling

MESSAGES = [{"role": "system", "content": "Answer from passages."}, {"role": "user", "content": "Why?"}]


class FakeServer(BaseHTTPRequestHandler):
    """Streams "Because [1]." as SSE; a model named "broken" gets a 500, "slow" sleeps, "flaky"
    gets a 503 on every request but the third."""

    requests: ClassVar[list[dict]] = []

    def do_POST(self) -> None:
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        FakeServer.requests.append({"path": self.path, **body})
        if body["model"] == "broken":
            self._send(500, "application/json", json.dumps({"error": {"message": "out of memory"}}).encode())
            return
        if body["model"] == "flaky" and sum(r["model"] == "flaky" for r in FakeServer.requests) % 3:
            self._send(503, "application/json", json.dumps({"error": {"message": "warming up"}}).encode())
            return
        if body["model"] == "slow":
            time.sleep(2)
        self.send_response(200)
        self.send_header("Content-Type", "text/event-stream")
        self.end_headers()
        try:
            for piece in ["Because", " [1]", "."]:
                chunk = {"id": "x", "object": "chat.completion.chunk", "created": 0, "model": body["model"],
                         "choices": [{"index": 0, "delta": {"content": piece}, "finish_reason": None}]}
                self.wfile.write(f"data: {json.dumps(chunk)}\n\n".encode())
                self.wfile.flush()
            self.wfile.write(b"data: [DONE]\n\n")
        except BrokenPipeError:
            pass  # the client timed out and left

    def _send(self, status: int, kind: str, data: bytes) -> None:
        self.send_response(status)
        self.send_header("Content-Type", kind)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture(scope="module")
def server() -> Iterator[str]:
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), FakeServer)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{httpd.server_address[1]}/v1"
    httpd.shutdown()


def test_streams_pieces_and_sends_the_sampling(server: str) -> None:
    generator = OpenAIChatGenerator(server, "smol", retries=0)
    assert list(generator.stream(MESSAGES, Sampling(max_new_tokens=50))) == ["Because", " [1]", "."]
    sent = FakeServer.requests[-1]
    assert sent["path"] == "/v1/chat/completions" and sent["stream"] is True
    assert sent["messages"] == MESSAGES and sent["max_tokens"] == 50 and sent["temperature"] == 0.0


def test_server_error_is_reported_with_status(server: str) -> None:
    with pytest.raises(GeneratorError, match="answered 500"):
        list(OpenAIChatGenerator(server, "broken", retries=0).stream(MESSAGES, Sampling()))


def test_timeout_is_reported(server: str) -> None:
    with pytest.raises(GeneratorError, match="did not answer within 0.5 s"):
        list(OpenAIChatGenerator(server, "slow", timeout=0.5, retries=0).stream(MESSAGES, Sampling()))


def test_transient_failures_are_retried_with_backoff(server: str) -> None:
    start = time.perf_counter()
    assert "".join(OpenAIChatGenerator(server, "flaky", retries=2).stream(MESSAGES, Sampling())) == "Because [1]."
    assert sum(r["model"] == "flaky" for r in FakeServer.requests) == 3
    assert time.perf_counter() - start > 0.5  # the client waited between tries
    with pytest.raises(GeneratorError, match="answered 503"):
        list(OpenAIChatGenerator(server, "flaky", retries=1).stream(MESSAGES, Sampling()))


def test_unreachable_server_names_the_url() -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]  # closed again: nothing listens there
    url = f"http://127.0.0.1:{port}/v1"
    with pytest.raises(GeneratorError, match=f"cannot reach the generation server at {url}"):
        list(OpenAIChatGenerator(url, "smol", retries=1).stream(MESSAGES, Sampling()))


def test_prompt_length_is_estimated_conservatively() -> None:
    generator = OpenAIChatGenerator("http://127.0.0.1:1/v1", "smol")
    text = "word " * 300
    assert generator.count_tokens([{"role": "user", "content": text}]) >= 300  # 1,500 chars: ~375 real tokens


def test_backends_are_chosen_by_name_from_the_registry(server: str) -> None:
    made = backends.create(GeneratorSpec("openai", "tiny", server, context_tokens=2048))
    assert isinstance(made, OpenAIChatGenerator) and made.context_tokens == 2048
    assert "".join(made.stream(MESSAGES, Sampling())) == "Because [1]."
    assert GeneratorSpec.of("tiny", server) == GeneratorSpec("openai", "tiny", server)  # --server, $RAG_SERVER
    assert GeneratorSpec.of("tiny", "").backend == "transformers"  # an empty server field: the local model
    assert set(backends.BACKENDS) == {"transformers", "llamacpp", "openai"}


def test_an_unknown_backend_names_the_known_ones() -> None:
    with pytest.raises(ValueError,
                       match=r"unknown generator backend 'vllm': known backends are llamacpp, openai, transformers"):
        backends.create(GeneratorSpec("vllm"))
    with pytest.raises(ValueError, match="needs a server URL"):
        backends.create(GeneratorSpec("openai"))
