"""The web UI's pages with AppTest and a fake service (fast, no models), and upload checks."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import streamlit as st
from streamlit.testing.v1 import AppTest

from rag import uploads
from rag.conversation import Turn
from tests import ui_fake

APP = str(Path(__file__).parent.parent / "ui" / "app.py")


@pytest.fixture
def ui(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[AppTest]:
    corpus = tmp_path / "corpus"
    corpus.mkdir()
    (corpus / "bees.md").write_text("# Bees\n\nBees live in hives.\n")
    monkeypatch.setenv("RAG_UI_SERVICE", "tests.ui_fake:make")
    monkeypatch.setenv("RAG_UI_FAKE_CORPUS", str(corpus))
    st.cache_resource.clear()  # the script's own copy of shared_service is cached under another name
    at = AppTest.from_file(APP, default_timeout=30)
    at.run()
    assert not at.exception, at.exception
    yield at
    st.cache_resource.clear()


def service() -> ui_fake.FakeService:
    return ui_fake.MADE[-1]


def page(at: AppTest, name: str) -> AppTest:
    at.sidebar.radio(key="page").set_value(name).run()
    assert not at.exception, at.exception
    return at


def test_chat_streams_an_answer_with_one_expander_per_cited_source(ui: AppTest) -> None:
    ui.sidebar.slider(key="k").set_value(3)
    ui.sidebar.toggle(key="strict").set_value(False)
    ui.chat_input[0].set_value("Where do bees live?").run()
    assert not ui.exception, ui.exception
    question, settings = service().asked[-1]
    assert question == "Where do bees live?" and settings.k == 3 and settings.mode == "hybrid"
    assert [m.name for m in ui.chat_message] == ["user", "assistant"]
    shown = " ".join(m.value for m in ui.markdown)
    assert "&#60;b&#62;Bold&#60;/b&#62;" in shown and "<b>Bold" not in shown  # model text is never raw HTML
    assert "Bees live <b>in hives</b> &#91;1&#93;." in shown  # the short answer in bold, in its place
    labels = [e.label for e in ui.expander]
    assert labels == ["[1] 1.md · support 0.90", "[2] 2.md · support 0.90", "[2] 2.md · support 0.10"]
    assert any("Citation corrected: the generator cited [3]; passage [2] holds" in c.value for c in ui.caption)
    assert any("<mark>bees live in hives</mark>" in m.value for m in ui.markdown)
    assert any("dense –" in c.value and "fused 1.0000" in c.value for c in ui.caption)
    ui.toggle(key="doc-1-0-1").set_value(True).run()
    assert any("before. <mark>bees live in hives</mark> after." in m.value for m in ui.markdown)
    ui.chat_input[0].set_value("Where do ants live?").run()
    assert [m.name for m in ui.chat_message] == ["user", "assistant", "user", "assistant"]  # history kept


def test_a_follow_up_reaches_the_service_with_the_chat_so_far_and_shows_the_question_answered(ui: AppTest) -> None:
    ui.chat_input[0].set_value("Where do bees live?").run()
    assert service().histories == [[]] and not any("Answered as" in c.value for c in ui.caption)
    ui.chat_input[0].set_value("And ants?").run()
    assert not ui.exception, ui.exception
    first_answer = "Bees live in hives [1]. Ants live in nests [3]. <b>Bold</b> [2]."  # the answer text as given
    assert service().histories[1] == [Turn("user", "Where do bees live?"), Turn("assistant", first_answer)]
    shown = [c.value for c in ui.caption if c.value.startswith("Answered as:")]
    assert shown == ["Answered as: And ants? (after: Where do bees live?)"]  # under the follow-up's answer only
    ui.chat_input[0].set_value("Something unknown?").run()  # a refused follow-up says what was refused
    assert ui.warning and len([c for c in ui.caption if c.value.startswith("Answered as:")]) == 2


def test_strict_setting_reaches_the_pipeline_and_drops_unsupported_sentences(ui: AppTest) -> None:
    ui.sidebar.toggle(key="strict").set_value(True)
    ui.chat_input[0].set_value("Where do bees live?").run()
    assert service().asked[-1][1].strict
    assert [e.label for e in ui.expander] == ["[1] 1.md · support 0.90", "[2] 2.md · support 0.90"]  # re-cited kept


def test_an_abstention_is_shown_with_its_reason_and_the_closest_passages(ui: AppTest) -> None:
    ui.chat_input[0].set_value("Something unknown?").run()
    assert ui.warning and "Reason: the reader found no answer in the passages" in ui.warning[0].value
    assert [e.label for e in ui.expander] == ["1. 1.md", "2. 2.md"]
    assert any("bees live in hives" in m.value for m in ui.markdown)


def test_uploads_are_checked_and_saved_inside_the_corpus_then_rebuilt(ui: AppTest) -> None:
    page(ui, "Corpus")
    corpus = service().corpus
    assert any("encrypted PDF" in e.value for e in ui.error)  # per-file errors listed
    ui.file_uploader[0].set_value([("notes.md", b"# Notes\n\nWasps build nests.", "text/markdown"),
                                   ("../../evil.md", b"# Evil", "text/markdown"),
                                   ("tool.exe", b"MZ", "application/octet-stream"),
                                   ("big.txt", b"x" * 2000, "text/plain")]).run()
    errors = " ".join(e.value for e in ui.error)
    assert "'tool.exe': type .exe is not indexed" in errors and "'big.txt': 0.0 MiB, over the" in errors
    assert (corpus / "uploads" / "notes.md").is_file() and (corpus / "uploads" / "evil.md").read_text() == "# Evil"
    assert not (corpus.parent.parent / "evil.md").exists() and not (corpus / "uploads" / "tool.exe").exists()
    ui.button[0].click().run()  # Rebuild index
    assert service().rebuilds == 1
    assert any("3 added" in s.value for s in ui.success)
    assert ui.get("progress")[0].proto.value == 100
    table = ui.dataframe[0].value
    assert set(table["file"]) == {"bees.md", "uploads/notes.md", "uploads/evil.md", "broken.pdf"}
    assert set(table[table["file"] == "uploads/notes.md"]["status"]) == {"indexed"}


def test_removing_a_file_rebuilds_without_it(ui: AppTest) -> None:
    page(ui, "Corpus")
    ui.selectbox(key="remove_choice").set_value("bees.md")
    ui.button[-1].click().run()  # the form's submit button, "Remove and rebuild"
    assert not (service().corpus / "bees.md").exists() and service().rebuilds == 1
    assert any("Removed bees.md" in s.value for s in ui.success)


def test_evaluation_page_shows_metrics_and_skipped_lines(ui: AppTest) -> None:
    page(ui, "Evaluate")
    ui.selectbox(key="dataset").set_value("eval/demo-questions.jsonl")
    ui.button[0].click().run()  # Evaluate answers
    assert not ui.exception, ui.exception
    rows = ui.table[0].value
    assert list(rows["metric"]) == ["questions", "faithfulness", "f1", "abstention"]
    assert list(rows["value"]) == ["3", "0.75", "0.5", "n/a"]
    assert any("line 2 is not JSON" in w.value for w in ui.warning)
    assert ui.get("download_button")
    ui.button[1].click().run()  # Evaluate retrieval
    assert list(ui.table[0].value["metric"]) == ["hybrid answer_in_top_5", "hybrid latency_p50_ms"]


@pytest.mark.parametrize(("name", "saved"), [("report.PDF", "report.PDF"), ("../../../etc/passwd.md", "passwd.md"),
                                             ("C:\\Users\\me\\notes.txt", "notes.txt"), ("my notes (1).md",
                                                                                         "my_notes_1_.md")])
def test_upload_names_are_reduced_to_safe_ones(name: str, saved: str) -> None:
    assert uploads.safe_name(name) == saved


@pytest.mark.parametrize(("name", "reason"), [("run.sh", "is not indexed"), ("..", "not a usable"),
                                              (".md", r"type \(none\) is not indexed"), ("noext", "is not indexed")])
def test_bad_upload_names_are_refused(name: str, reason: str) -> None:
    with pytest.raises(uploads.UploadError, match=reason):
        uploads.safe_name(name)


def test_uploads_never_overwrite_and_respect_the_size_limit(tmp_path: Path) -> None:
    first = uploads.save(tmp_path, "a.md", b"one")
    second = uploads.save(tmp_path, "a.md", b"two")
    assert (first.name, second.name) == ("a.md", "a-1.md") and first.read_bytes() == b"one"
    with pytest.raises(uploads.UploadError, match="over the 0 MiB limit"):
        uploads.save(tmp_path, "b.md", b"xx", max_bytes=1)
    with pytest.raises(uploads.UploadError, match="empty"):
        uploads.save(tmp_path, "c.md", b"")


def test_local_service_lists_files_shows_context_and_removes_only_corpus_files(tmp_path: Path, corpus: Path,
                                                                              fake: Any) -> None:
    from rag import Index
    from rag.service import LocalService

    Index(tmp_path / "idx", embedder=fake).ingest([corpus], progress=False)
    local = LocalService(tmp_path / "idx", corpus)
    (corpus / "later.md").write_text("# Later\n\nNot indexed yet.\n")
    (corpus / ".hidden.md").write_text("hidden")
    rows = {r.path: r for r in local.files()}
    assert rows["sample.txt"].status == "indexed" and rows["sample.txt"].chunks > 0 and rows["sample.txt"].indexed_at
    assert rows["later.md"].status == "not indexed" and ".hidden.md" not in rows
    source = str((corpus / "sample.txt").resolve())
    text, start, end = local.context(source, 4, 10, None)
    assert text[start:end] == (corpus / "sample.txt").read_text()[4:10]
    with pytest.raises(uploads.UploadError, match="is not a document of the corpus"):
        local.remove("../idx/CURRENT")
    (corpus / "notes.sqlite").write_text("kept beside the documents")
    for not_listed in (".hidden.md", "notes.sqlite"):  # only what the listing shows can be removed
        with pytest.raises(uploads.UploadError, match="is not a document of the corpus"):
            local.remove(not_listed)
        assert (corpus / not_listed).exists()
    local.remove("later.md")
    assert not (corpus / "later.md").exists()


def test_the_apps_own_streamlit_options_hide_the_developer_toolbar() -> None:
    import tomllib

    config = tomllib.loads((Path(APP).parent.parent / ".streamlit" / "config.toml").read_text())
    assert config["client"]["toolbarMode"] == "minimal"
    assert config["server"]["maxUploadSize"] * 2**20 == uploads.MAX_UPLOAD_BYTES
