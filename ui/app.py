"""The web UI (Streamlit): ask with streamed, cited and checked answers; manage the corpus; run evaluations.

Run it with `rag ui` (binds to 127.0.0.1:8501), or from a checkout with `streamlit run ui/app.py`
(the index and corpus from $RAG_INDEX and $RAG_CORPUS, Streamlit's options from .streamlit/config.toml).
A client of the package: the pages talk only to a `Service` (rag.service), loaded once per process
and shared; chat history and settings live in each browser session's own state.
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import streamlit as st

from rag import Answer, Delta, Settings
from rag import service as services
from rag.service import MODES, READER, REASONS
from rag.uploads import ALLOWED, UploadError

PAGES = ("Ask", "Corpus", "Evaluate")


@st.cache_resource(show_spinner="Loading the index and models…")
def shared_service() -> services.Service:
    """One service per process: the index and models are loaded once and shared by all sessions."""
    return services.load()


MARKUP = set("&<>\"'*_`[]#|~\\$")  # characters HTML or Markdown could read as markup


def inert(text: str) -> str:
    """`text` with every character that could be markup written as an HTML entity, so document and
    model text is shown as text, never rendered as HTML or Markdown."""
    return "".join(f"&#{ord(c)};" if c in MARKUP else c for c in text)


def highlight(text: str, start: int, end: int) -> str:
    """`text` made inert, with [start, end) marked, keeping line breaks."""
    start, end = max(0, min(start, len(text))), max(0, min(end, len(text)))
    return (f'<div style="white-space: pre-wrap">{inert(text[:start])}<mark>{inert(text[start:end])}</mark>'
            f"{inert(text[end:])}</div>")


def sidebar() -> services.AskOptions:
    start = services.AskOptions.from_settings(Settings.from_env())
    st.sidebar.header("Settings")
    mode = st.sidebar.selectbox("Retrieval", MODES, index=MODES.index("hybrid"), key="mode")
    k = st.sidebar.slider("Passages (k)", 1, 10, start.k, key="k")
    strict = st.sidebar.toggle("Strict faithfulness", start.strict, key="strict",
                               help="Drop sentences the verifier finds unsupported; abstain if none is left.")
    backend = st.sidebar.radio("Generator", ["In process", "OpenAI-compatible server"], index=int(bool(start.server)),
                               key="backend")
    server = st.sidebar.text_input("Server URL", start.server or "http://localhost:8000/v1", key="server") \
        if backend != "In process" else ""
    generator = st.sidebar.text_input("Model", start.generator, key="generator")
    return services.AskOptions(mode=mode, k=k, strict=strict, server=server, generator=generator)


def ask_page(service: services.Service, settings: services.AskOptions) -> None:
    st.title("Ask your documents")
    history: list[dict[str, Any]] = st.session_state.setdefault("history", [])
    for turn, message in enumerate(history):
        with st.chat_message(message["role"]):
            if message["role"] == "user":
                st.markdown(inert(message["content"]), unsafe_allow_html=True)
            else:
                show_answer(service, message["answer"], turn)
    question = st.chat_input("Ask a question about the corpus")
    if not question:
        return
    history.append({"role": "user", "content": question})
    with st.chat_message("user"):
        st.markdown(inert(question), unsafe_allow_html=True)
    with st.chat_message("assistant"):
        final: list[Answer] = []

        def pieces() -> Any:
            for event in service.ask(question, settings):
                match event:
                    case Delta(text=text):
                        yield text
                    case Answer():
                        final.append(event)

        try:
            st.write_stream(pieces())
        except Exception as exc:  # a server down, a model missing: say so and keep the session
            st.error(f"Could not answer: {exc}")
            history.pop()
            return
    history.append({"role": "assistant", "answer": final[0]})
    st.rerun()


def show_answer(service: services.Service, answer: Answer, turn: int) -> None:
    if answer.abstained:
        reason = REASONS.get(answer.abstain_reason or "", (answer.abstain_reason or "").replace("_", " "))
        st.warning(f"{answer.answer}  \nReason: {reason}")
        show_closest(answer, turn)
        return
    st.markdown(inert(answer.answer), unsafe_allow_html=True)
    if answer.answered_by == READER and answer.draft is not None:
        st.caption(f"The reader's answer, quoted from its passage; the generator's draft “{inert(answer.draft)}” "
                   "was not supported.")
    if answer.faithfulness is not None:
        st.caption(f"Faithfulness {answer.faithfulness:.2f} · {answer.model} · "
                   f"{answer.timings.get('total_s', 0):.1f} s")
    for sentence_no, sentence in enumerate(answer.sentences):
        if sentence.citation_corrected:
            cited = ", ".join(f"[{n}]" for n in sentence.cited_as or []) or "no passage"
            st.caption(f"Citation corrected: the generator cited {cited}; passage "
                       f"[{sentence.citations[0]}] holds “{inert(sentence.text)}”")
        elif sentence.verdict and sentence.verdict != "supported":
            st.caption(f"⚠ {sentence.verdict}: “{inert(sentence.text)}”")
        for position, marker in enumerate(sentence.citations):
            support = sentence.citation_support[position] if sentence.citation_support else None
            show_source(service, answer, marker, support, f"{turn}-{sentence_no}-{marker}")


def show_closest(answer: Answer, turn: int, n: int = 3) -> None:
    """Under an abstention, the passages that came closest (Answer.closest), so the user can read them."""
    hits = answer.closest(n)
    if hits:
        st.caption("Closest passages found:")
    for number, hit in enumerate(hits, 1):
        name = Path(hit.source).name + (f", page {hit.page}" if hit.page else "")
        with st.expander(f"{number}. {name}"):
            st.markdown(f'<div style="white-space: pre-wrap">{inert(hit.text)}</div>', unsafe_allow_html=True)


def show_source(service: services.Service, answer: Answer, marker: int, support: float | None, key: str) -> None:
    hit = answer.retrieved[marker - 1]
    citation = next(c for c in answer.citations if c.marker == marker)
    name = Path(hit.source).name + (f", page {hit.page}" if hit.page else "")
    score = "" if support is None else f" · support {support:.2f}"
    with st.expander(f"[{marker}] {name}{score}"):
        ranks = [f"dense #{hit.dense_rank}" if hit.dense_rank else "dense –",
                 f"BM25 #{hit.bm25_rank}" if hit.bm25_rank else "BM25 –", f"fused {hit.score:.4f}"]
        st.caption(" · ".join(ranks) + (f" · support {support:.2f}" if support is not None else ""))
        st.markdown(highlight(hit.text, citation.start - hit.start, citation.end - hit.start), unsafe_allow_html=True)
        if st.toggle("View in document", key=f"doc-{key}"):
            text, start, end = service.context(hit.source, citation.start, citation.end, hit.page)
            st.markdown(highlight(text, start, end), unsafe_allow_html=True)


def progress_bar(start: str, unit: str) -> services.Progress:
    """A Streamlit progress bar, as the (done, total) callback the service reports to."""
    bar = st.progress(0.0, text=start)

    def update(done: int, total: int) -> None:
        bar.progress(min(1.0, done / max(1, total)), text=f"{done} of {total} {unit}")

    return update


def corpus_page(service: services.Service) -> None:
    st.title("Corpus")
    uploaded = st.file_uploader(f"Add files ({', '.join(ALLOWED)})", accept_multiple_files=True, key="uploads")
    done: set[str] = st.session_state.setdefault("saved_uploads", set())
    for file in uploaded or []:
        if file.file_id in done:
            continue
        try:
            saved = service.upload(file.name, file.getvalue())
            st.success(f"Saved {file.name} as {saved.name}; rebuild to index it.")
        except UploadError as exc:
            st.error(str(exc))
        done.add(file.file_id)
    if st.button("Rebuild index", type="primary"):
        report = service.rebuild(progress_bar("Reading files…", "files read"))
        st.success(f"{len(report.added)} added, {len(report.updated)} updated, {len(report.removed)} removed, "
                   f"{report.unchanged} unchanged, {len(report.failed)} failed")
        for failure in report.failed:
            st.error(f"{failure['path']}: {failure['error']}")
    rows = service.files()
    st.dataframe([{"file": r.path, "status": r.status, "chunks": r.chunks,
                   "indexed": time.strftime("%Y-%m-%d %H:%M", time.localtime(r.indexed_at)) if r.indexed_at else "",
                   "error": r.error} for r in rows], hide_index=True, width="stretch")
    for row in rows:
        if row.error:
            st.error(f"{row.path}: {row.error}")
    with st.form("remove"):
        target = st.selectbox("Remove a file", [r.path for r in rows], index=None, key="remove_choice")
        if st.form_submit_button("Remove and rebuild") and target:
            service.remove(target)
            report = service.rebuild(lambda n, total: None)
            st.success(f"Removed {target} ({len(report.removed)} dropped from the index)")


def evaluate_page(service: services.Service) -> None:
    st.title("Evaluate")
    choices = sorted(str(p) for p in Path("eval").glob("*.jsonl"))
    dataset = st.selectbox("Question set (JSON lines)", choices, index=0 if choices else None, key="dataset",
                           accept_new_options=True)
    answers, retrieval = st.columns(2)
    if answers.button("Evaluate answers", type="primary", help="rag eval answers: retrieve, generate and verify "
                      "every question") and dataset:
        show_result(service.evaluate(Path(dataset), progress_bar("Answering…", "questions answered")))
    if retrieval.button("Evaluate retrieval", help="per retrieval mode: is a gold answer in the top passages?") \
            and dataset:
        show_result(service.evaluate_retrieval(Path(dataset), progress_bar("Searching…", "searches")))


def show_result(result: services.EvalResult) -> None:
    for problem in result.problems:
        st.warning(f"skipped {problem}")
    metrics = result.metrics
    st.table([{"metric": k, "value": "n/a" if v is None else v} for k, v in metrics.items()])
    shares = {k: v for k, v in metrics.items() if isinstance(v, float) and 0 <= v <= 1 and not k.endswith("_s")
              and "latency" not in k}
    st.bar_chart(shares, horizontal=True)
    st.download_button("Download the metrics (JSON)", json.dumps(metrics, indent=1), file_name="metrics.json")
    if result.report_dir:
        for name in ("support.png", "latency.png"):
            if (result.report_dir / name).is_file():
                st.image(str(result.report_dir / name))
        report = result.report_dir / "results.md"
        st.download_button("Download the report (Markdown)", report.read_text(), file_name="results.md")


def main() -> None:
    st.set_page_config(page_title="rag: ask your documents", layout="wide")
    service = shared_service()
    page = st.sidebar.radio("Page", PAGES, key="page")
    settings = sidebar()
    if page == "Ask":
        ask_page(service, settings)
    elif page == "Corpus":
        corpus_page(service)
    else:
        evaluate_page(service)


if __name__ == "__main__":
    main()
