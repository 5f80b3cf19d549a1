"""`rag serve` as a real process with the real generator, reader and verifier, over a small index of
demo-corpus files, driven by the official `openai` client and LangChain's ChatOpenAI (docs/api.md)."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import openai
import pytest

from rag.server.keys import KeyStore
from tests.conftest import FIXTURES, ingest_command, rag_env
from tests.served import free_port, wait_ready

pytestmark = pytest.mark.slow
DEMO = Path(__file__).resolve().parent.parent / "corpus" / "rho-bank"
BANK = ["doc_everyone_pay_sending_limits_001.md", "doc_everyone_pay_sending_limits_003.md",
        "doc_everyone_pay_everyone_pay_001.md", "doc_credit_cards_ecocard_001.md"]
QUESTION = "What is the daily send limit for verified Everyone Pay accounts?"
UNANSWERABLE = "Who won the football world cup in 1998?"


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    """One server over two collections, `bank` (demo files) and `garden` (a fixture), and a key for each."""
    root = tmp_path_factory.mktemp("serve")
    corpora = {"bank": root / "bank", "garden": root / "garden"}
    corpora["bank"].mkdir()
    corpora["garden"].mkdir()
    for name in BANK:
        shutil.copy(DEMO / name, corpora["bank"] / name)
    shutil.copy(FIXTURES / "sample.md", corpora["garden"] / "greenhouse.md")
    for name, corpus in corpora.items():
        subprocess.run(ingest_command(corpus, root / f"index-{name}"), env=rag_env(), check=True, capture_output=True,
                       timeout=300)
    store = KeyStore(root / "keys.sqlite")
    keys = {name: store.create([name], name)[1] for name in corpora}
    port = free_port()
    log = (root / "server.log").open("w")
    process = subprocess.Popen([sys.executable, "-m", "rag", "serve", "--port", str(port), "--keys",
                                str(root / "keys.sqlite"), *(a for name, corpus in corpora.items() for a in
                                ("--collection", f"{name}={root / f'index-{name}'}:{corpus}"))],
                               env=rag_env(), stdout=log, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}"
    try:
        wait_ready(f"{url}/health", process, root / "server.log", 240)
        yield {"url": url, "keys": keys, "corpora": corpora, "process": process}
    finally:
        process.terminate()
        process.wait(30)
        log.close()


def client(server: dict[str, Any], collection: str = "bank") -> openai.OpenAI:
    return openai.OpenAI(base_url=f"{server['url']}/v1", api_key=server["keys"][collection], max_retries=0)


def assert_cited_in(citations: list[dict[str, Any]], corpus: Path) -> None:
    """Every citation names a file of `corpus`, and its quote is the text at its offsets."""
    assert citations
    for citation in citations:
        text = (corpus / citation["source"]).read_text()
        assert text[citation["start"]:citation["end"]] == citation["quote"], citation


def test_the_openai_client_gets_a_cited_answer(server: dict[str, Any]) -> None:
    completion = client(server).chat.completions.create(model="bank", messages=[{"role": "user", "content": QUESTION}])
    assert "3,500" in (completion.choices[0].message.content or "")
    assert completion.choices[0].finish_reason == "stop" and completion.usage and completion.usage.prompt_tokens > 0
    rag = (completion.model_extra or {})["rag"]
    assert not rag["abstained"] and rag["faithfulness"] == 1.0 and rag["sentences"][0]["verdict"] == "supported"
    assert_cited_in(rag["citations"], server["corpora"]["bank"])


def test_the_openai_client_streams_the_final_answer_then_its_evidence(server: dict[str, Any]) -> None:
    stream = client(server).chat.completions.create(model="bank", messages=[{"role": "user", "content": QUESTION}],
                                                    stream=True, stream_options={"include_usage": True})
    chunks = list(stream)
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    [final] = [c for c in chunks if c.choices and c.choices[0].finish_reason == "stop"]
    rag = (final.model_extra or {})["rag"]
    assert "3,500" in text and rag["citations"][0]["quote"] in text
    assert chunks[-1].usage is not None and chunks[-1].usage.total_tokens > 0


def test_langchain_reads_the_sources_and_the_abstention(server: dict[str, Any]) -> None:
    from langchain_openai import ChatOpenAI

    llm = ChatOpenAI(model="bank", base_url=f"{server['url']}/v1", api_key=server["keys"]["bank"],
                     include_response_headers=True, max_retries=0)
    answered = llm.invoke(QUESTION)
    assert "3,500" in str(answered.content)
    assert_cited_in(json.loads(answered.response_metadata["headers"]["x-rag"])["citations"], server["corpora"]["bank"])
    refused = llm.invoke(UNANSWERABLE)
    rag = json.loads(refused.response_metadata["headers"]["x-rag"])
    assert rag["abstained"] and rag["abstain_reason"] == "no_relevant_passages" and rag["abstain_message"]
    assert rag["closest"] and all((server["corpora"]["bank"] / c["source"]).exists() for c in rag["closest"])


def test_a_key_sees_only_its_collections(server: dict[str, Any]) -> None:
    assert [m.id for m in client(server).models.list()] == ["bank"]
    assert [m.id for m in client(server, "garden").models.list()] == ["garden"]
    with pytest.raises(openai.NotFoundError, match="collection 'bank' not found"):
        client(server, "garden").chat.completions.create(model="bank", messages=[{"role": "user", "content": "x"}])
    with pytest.raises(openai.AuthenticationError):
        openai.OpenAI(base_url=f"{server['url']}/v1", api_key="rag-wrong", max_retries=0).models.list()


def test_health_and_metrics(server: dict[str, Any]) -> None:
    assert httpx.get(f"{server['url']}/health").json() == {"status": "ready", "collections": 2}
    metrics = httpx.get(f"{server['url']}/metrics").text
    assert 'route="/v1/chat/completions"' in metrics and "rag_answer_queue_depth" in metrics
    assert "bank" not in metrics and "garden" not in metrics


def test_the_server_keeps_serving_after_a_client_goes_away(server: dict[str, Any]) -> None:
    headers = {"Authorization": f"Bearer {server['keys']['bank']}"}
    body = {"model": "bank", "stream": True, "messages": [{"role": "user", "content": QUESTION}]}
    with pytest.raises(httpx.ReadTimeout), httpx.stream("POST", f"{server['url']}/v1/chat/completions", json=body,
                                                        headers=headers, timeout=httpx.Timeout(5, read=0.5)) as gone:
        gone.read()
    events = httpx.post(f"{server['url']}/v1/ask", json={"collection": "bank", "question": QUESTION, "stream": True},
                        headers=headers, timeout=60).text
    names = [line[7:] for line in events.splitlines() if line.startswith("event: ")]
    assert names[-1] == "final" and "sentence" in names and server["process"].poll() is None


def test_a_follow_up_is_answered_end_to_end(server: dict[str, Any]) -> None:
    """A follow-up is written out against the conversation, then answered and cited as a question of its own."""
    messages: list[Any] = [{"role": "user", "content": QUESTION}, {"role": "assistant", "content": "$3,500 [1]."},
                           {"role": "user", "content": "And for new accounts?"}]
    completion = client(server).chat.completions.create(model="bank", messages=messages)
    rag = (completion.model_extra or {})["rag"]
    assert rag["asked"] == "And for new accounts?"
    assert rag["question"] == "What is the daily send limit for new accounts?"
    assert not rag["abstained"] and "$750" in (completion.choices[0].message.content or ""), rag
    assert_cited_in(rag["citations"], server["corpora"]["bank"])
