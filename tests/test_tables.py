"""Tables read by row and column (rag.tables): written out as sentences with offsets kept, their
cells with row labels and column headers, lists that are tables, and questions that name
another row or column than a cell's."""

from __future__ import annotations

from rag import tables
from rag.tables import linearize

LIMITS = ("## Limits\n| Account status | Daily send limit | Monthly send limit |\n| --- | --- | --- |\n"
          "| New accounts | $750 | $7,500 |\n| Verified accounts | $3,500 | $35,000 |\n")
NESTED = ("- New accounts:\n  - Daily: $750\n  - Monthly: $7,500\n"
          "- Verified accounts:\n  - Daily: $3,500\n  - Monthly: $35,000\n\nTips follow.")
CARDS = ("### Bonus by tier\n- Business Silver Rewards Card: +0.3%\n- Business Gold Rewards Card: +0.55%\n"
         "- Business Platinum Rewards Card: +0.9%\n")


def value(passage: str, cell: tables.Cell) -> str:
    return passage[cell.start:cell.end]


def test_tables_are_read_as_sentences_and_spans_map_back_to_the_passage() -> None:
    passage = ("## Limits\n| Account | Daily limit |\n| --- | ---: |\n| New | $750 |\n| Verified | $3,500 |\n"
               "After the table.")
    view = linearize(passage)
    assert "Account: Verified; Daily limit: $3,500." in view.text and "---" not in view.text
    assert view.text.startswith("## Limits\n") and view.text.endswith("After the table.")
    at = view.text.index("$3,500")
    start, end = view.original(at, at + 6)  # type: ignore[misc]
    assert passage[start:end] == "$3,500"
    assert view.original(view.text.index("Daily limit: $3"), at + 6) is None  # written, not copied: no span
    plain = "No table here.\nJust | a pipe in prose."
    assert linearize(plain).text == plain and linearize(plain).original(0, 8) == (0, 8)
    assert view.position(start, end) == (at, at + 6)  # the inverse mapping


def test_the_heading_path_is_read_first_but_never_answered_from() -> None:
    passage = "| Tier | Fee |\n|---|---|\n| Gold | $5 |"
    view = linearize(passage, context="Zircon Card > Fees")
    assert view.text.startswith("Zircon Card > Fees\n") and view.original(0, 6) is None
    at = view.text.index("$5")
    assert view.original(at, at + 2) == (passage.index("$5"), passage.index("$5") + 2)


def test_each_value_cell_knows_its_row_and_column() -> None:
    cells = {value(LIMITS, c): c for c in tables.cells(LIMITS)}
    assert list(cells) == ["$750", "$7,500", "$3,500", "$35,000"]  # the label column is no value
    verified = cells["$35,000"]
    assert (verified.row, verified.column) == ("Verified accounts", "Monthly send limit")
    assert verified.rows == ("New accounts", "Verified accounts")
    assert verified.columns == ("Daily send limit", "Monthly send limit")
    assert tables.within(list(cells.values()), LIMITS.index("$3,500"), LIMITS.index("$3,500") + 6) == cells["$3,500"]
    assert tables.cells("No table.\n| just | pipes |\n") == []


def test_lists_written_as_tables_have_cells_too() -> None:
    nested = {value(NESTED, c): (c.row, c.column) for c in tables.cells(NESTED)}
    assert nested == {"$750": ("New accounts", "Daily"), "$7,500": ("New accounts", "Monthly"),
                      "$3,500": ("Verified accounts", "Daily"), "$35,000": ("Verified accounts", "Monthly")}
    flat = [(value(CARDS, c), c.row) for c in tables.cells(CARDS)]
    assert flat == [("+0.3%", "Business Silver Rewards Card"), ("+0.55%", "Business Gold Rewards Card"),
                    ("+0.9%", "Business Platinum Rewards Card")]
    assert tables.cells("- Only one: item\n\nText.") == []  # one item is no table


def test_a_question_naming_another_column_or_row_misreads_the_cell() -> None:
    cells = {value(LIMITS, c): c for c in tables.cells(LIMITS)}
    monthly_verified = "What is the monthly send limit for verified accounts?"
    assert tables.misread(monthly_verified, cells["$35,000"]) is None
    assert tables.misread(monthly_verified, cells["$3,500"]) == "Monthly send limit"
    assert tables.misread(monthly_verified, cells["$7,500"]) == "Verified accounts"
    assert tables.misread("How much can verified accounts send per month?", cells["$3,500"]) is not None  # "per month"
    assert tables.misread("What is the send limit?", cells["$3,500"]) is None  # names no row or column: open
    nested = {value(NESTED, c): c for c in tables.cells(NESTED)}
    assert tables.misread(monthly_verified, nested["$3,500"]) == "Monthly"


def test_a_question_naming_a_row_or_column_the_table_lacks_misreads_every_cell() -> None:
    cells = tables.cells(LIMITS)
    weekly = "What is the weekly send limit for verified accounts?"
    assert [tables.misread(weekly, c) for c in cells] == ["another column"] * 4
    titanium = "What bonus does the Business Titanium Rewards Card add?"
    assert {tables.misread(titanium, c) for c in tables.cells(CARDS)} == {"another row"}
    platinum = "What bonus does the Business Platinum Rewards Card add?"
    assert [tables.misread(platinum, c) is None for c in tables.cells(CARDS)] == [False, False, True]
    # One shared word ("accounts") is not enough to say the question names a row the table lacks.
    assert tables.misread("What is the daily send limit for business accounts?", cells[0]) is None
