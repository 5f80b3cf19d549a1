"""Passages narrowed to their most relevant sentences: whole sentences, exact offsets, within budget."""

from __future__ import annotations

from rag.generate.excerpt import narrow, sentence_spans
from rag.retrieve import Hit

FILE = ("Preface text here. The hive holds wax combs. Bees make honey from nectar! Drones do not sting. "
        "Queens lay eggs all summer. The end.")
START = 19  # the chunk begins at the second sentence of the file


def chunk() -> Hit:
    return Hit(1, 7, "/d/bees.md", None, START, len(FILE), 1.0, "", FILE[START:])


def test_sentence_spans_split_at_stops_and_line_ends_but_not_inside_numbers() -> None:
    text = "One. Two!\n- three\n\n  Four"
    assert [text[s:e] for s, e in sentence_spans(text)] == ["One.", "Two!", "- three", "Four"]
    text = "It costs $2.50 a month (v1.2)... Really?! Yes"
    assert [text[s:e] for s, e in sentence_spans(text)] == ["It costs $2.50 a month (v1.2)...", "Really?!", "Yes"]


def test_window_covers_the_question_terms_and_keeps_file_offsets() -> None:
    hit = narrow("How do bees make honey?", chunk(), 60)
    assert hit.text == "Bees make honey from nectar! Drones do not sting."
    assert FILE[hit.start:hit.end] == hit.text and (hit.chunk_id, hit.rank) == (7, 1)


def test_terms_spread_over_neighbours_pull_them_in() -> None:
    hit = narrow("Do drones sting, and do queens lay eggs?", chunk(), 50)
    assert hit.text == "Drones do not sting. Queens lay eggs all summer."


def test_short_passages_are_untouched_and_no_match_keeps_the_start() -> None:
    assert narrow("honey", chunk(), 500) == chunk()
    assert narrow("zebra stripes", chunk(), 50).text == "The hive holds wax combs."


def test_one_sentence_longer_than_the_budget_is_cut_at_a_space() -> None:
    long = Hit(1, 1, "/d/x.md", None, 0, 59, 1.0, "", "Honey " * 9 + "bees.")
    hit = narrow("honey bees", long, 20)
    assert hit.text == "Honey Honey Honey" and (hit.start, hit.end) == (0, 17)
