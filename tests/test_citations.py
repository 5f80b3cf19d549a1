"""Citation parsing, bad markers, and quotes mapped back to file offsets."""

from __future__ import annotations

from rag.generate.citations import parse, quote, split_sentences, stating
from rag.retrieve import Hit

DOC = "Intro line. Cats sleep sixteen hours a day. Dogs bark at night! Birds sing at dawn."


def hit(n: int, start: int, end: int) -> Hit:
    return Hit(n, 100 + n, f"/docs/d{n}.md", n if n > 1 else None, start, end, 1.0, "", DOC[start:end])


def test_markers_before_or_after_the_full_stop_belong_to_their_sentence() -> None:
    assert split_sentences("Cats sleep [1]. Dogs bark. [2][1] Birds sing [1, 2]") == [
        "Cats sleep [1].", "Dogs bark. [2][1]", "Birds sing [1, 2]"]
    assert split_sentences("") == [] and split_sentences("No stop at the end") == ["No stop at the end"]


def test_citations_map_to_chunks_and_quote_the_supporting_sentence() -> None:
    passages = [hit(1, 12, len(DOC)), hit(2, 0, 44)]
    parsed = parse("Dogs bark at night [1]. Cats sleep a lot [2][1].", passages)
    assert [(s.text, s.citations) for s in parsed.sentences] == [
        ("Dogs bark at night.", [1]), ("Cats sleep a lot.", [2, 1])]
    first = parsed.citations[0]
    assert (first.marker, first.chunk_id, first.source) == (1, 101, "/docs/d1.md")
    assert first.quote == "Dogs bark at night" and DOC[first.start:first.end] == first.quote  # the string itself
    second = parsed.citations[1]
    assert second.page == 2 and second.quote == "Cats sleep sixteen hours a day."
    assert DOC[second.start:second.end] == second.quote
    assert parsed.invalid_markers == 0


def test_markers_naming_no_passage_are_removed_and_counted() -> None:
    parsed = parse("Birds sing [3]. Dogs bark [0][1]. [7]", [hit(1, 12, len(DOC))])
    assert [(s.text, s.citations) for s in parsed.sentences] == [("Birds sing.", []), ("Dogs bark.", [1])]
    assert parsed.invalid_markers == 3 and len(parsed.citations) == 1


def test_a_sentence_sharing_no_terms_quotes_the_whole_passage() -> None:
    passage = hit(1, 12, 44)
    citation = parse("Zebras graze [1].", [passage]).citations[0]
    assert citation.quote == passage.text and (citation.start, citation.end) == (12, 44)


def test_a_sentence_stating_a_value_quotes_the_cell_that_holds_it() -> None:
    """A plain sentence cited after writing: its quote is the value where the passage holds it, not the
    table's header row that shares its words."""
    table = ("| Account status | Daily send limit | Monthly send limit |\n| --- | --- | --- |\n"
             "| New accounts | $1,000 | $7,500 |\n| Verified accounts | $3,500 | $35,000 |")
    passage = Hit(1, 1, "limits.md", None, 100, 100 + len(table), 0.0, "", table)
    cited = quote("The monthly send limit for verified accounts is $35,000.", 1, passage)
    assert cited.quote == "$35,000" and table[cited.start - 100:cited.end - 100] == "$35,000"


STEPS = ("To make one, follow these steps:\n\n1. Open a terminal.\n2. Run the command:\n   ```bash\n"
         "   python3 -m venv env. x\n   ```\n   It makes a folder. It holds Python.\n- Then activate it [2].\n\n"
         "Run:\n\n```\nsource env/bin/activate\n```\n\nThat is all. Done.")


def test_a_list_item_and_the_code_block_after_a_sentence_are_one_sentence() -> None:
    """Steps are checked whole: cut at every full stop, "1." would be a sentence and the command
    would lose the words saying what it does; a lead-in ending with a colon joins what it introduces."""
    assert split_sentences(STEPS) == [
        "To make one, follow these steps:\n\n1. Open a terminal.",
        "2. Run the command:\n   ```bash\n   python3 -m venv env. x\n   ```\n   It makes a folder. It holds Python.",
        "- Then activate it [2].", "Run:\n\n```\nsource env/bin/activate\n```", "That is all.", "Done."]
    assert split_sentences("It needs Python 3. Then it runs: ``` a. b ``` Done.") == [
        "It needs Python 3.", "Then it runs: ``` a. b ``` Done."]  # no full stop ends one inside a fence
    parsed = parse(STEPS, [hit(1, 12, len(DOC)), hit(2, 0, 44)])
    assert [s.citations for s in parsed.sentences][2] == [2] and len(parsed.sentences) == 6
    assert [s.text for s in parsed.sentences][:3] == [  # the steps' numbers and bullets are not claimed
        "To make one, follow these steps: Open a terminal.",
        "Run the command: ```bash python3 -m venv env. x ``` It makes a folder. It holds Python.", "Then activate it."]


def test_a_span_is_stated_as_its_passages_sentence_or_as_a_cell_with_its_row_and_column() -> None:
    """The reader's answer written out (rag.decision.span_answer): not "sixteen hours" but the sentence
    holding it; a table cell with its row label and column header, which the row alone does not say."""
    cats = hit(1, 0, len(DOC))
    at = DOC.index("sixteen hours")
    assert stating(cats, "sixteen hours", at, at + 13) == "Cats sleep sixteen hours a day."
    assert stating(cats, "sixteen hours", at + 1, at + 14) is None  # the passage holds no such span there
    listed = "## 4.2. Limits\n\n- Deposits settle in two days\n3. Run `make` to build"
    items = Hit(1, 1, "/docs/l.md", None, 50, 50 + len(listed), 1.0, "", listed)
    for span, said in (("two days", "Deposits settle in two days"), ("`make`", "Run `make` to build"),
                       ("Limits", "Limits")):
        start = 50 + listed.index(span)
        assert stating(items, span, start, start + len(span)) == said  # list and heading openers left out
    table = "Limits by account:\n\n| Account | Daily send limit | Monthly send limit |\n|---|---|---|\n" \
            "| Verified accounts | $3,500 | $35,000 |"
    grid = Hit(1, 1, "/docs/t.md", None, 0, len(table), 1.0, "", table)
    start = table.index("$35,000")
    assert stating(grid, "$35,000", start, start + 7) == "Verified accounts: Monthly send limit $35,000."
    long = "Cats " + "purr and " * 60 + "sleep."
    many = Hit(1, 1, "/docs/c.md", None, 0, len(long), 1.0, "", long)
    assert stating(many, "sleep", len(long) - 6, len(long) - 1) is None  # too long a sentence: the span alone
