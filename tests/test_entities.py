"""The entity check (rag.entities): every number, name and flag a claim's answer states must be
in its passage, a number as the value of the row and column the claim names; and the verifier
wrapper (rag.verify.RuleChecked) that cuts the model's score when one is missing."""

from __future__ import annotations

import pytest

from rag import verify
from rag.entities import missing
from rag.generate import citations as cites
from tests.test_bounds import Echo  # 0.9 for a claim without a bound
from tests.test_verify import answer

TABLE = ("Everyone Pay sending limits\n| Account status | Daily send limit | Monthly send limit |\n"
         "| --- | --- | --- |\n| New accounts | $750 | $7,500 |\n| Verified accounts | $3,500 | $35,000 |\n")
MONTHLY = "What is the monthly send limit for verified Everyone Pay accounts?"
SET = "set -e: exit at once if a pipeline fails. set -x: print each command before running it. See `set -o`."


def test_the_right_cell_with_its_row_and_column_is_held() -> None:
    assert missing(TABLE, f"{MONTHLY} $35,000") == []
    assert missing(TABLE, f"{MONTHLY} Verified accounts can send up to 35000 dollars a month.") == []
    assert missing(TABLE, f"{MONTHLY} It is 35,000.") == []  # "$35,000" = "35,000" = "35000"


def test_another_columns_rows_or_products_value_is_missing_and_named() -> None:
    assert missing(TABLE, f"{MONTHLY} The monthly limit is $3,500.") == [
        "$3,500 (the passage's Verified accounts / Daily send limit, not Monthly send limit)"]
    assert missing(TABLE, f"{MONTHLY} $7,500") == [
        "$7,500 (the passage's New accounts / Monthly send limit, not Verified accounts)"]
    assert missing(TABLE, f"{MONTHLY} $12,500") == ["$12,500"]  # another product's limit: not in this passage
    # A value that is also said in prose is held (the table is not all the passage says).
    assert missing(TABLE + "Verified customers may send $3,500 a month.", f"{MONTHLY} $3,500") == []


def test_invented_flags_names_and_code_are_missing() -> None:
    assert missing(SET, "What does set -x do? The -x option prints each command.") == []
    assert missing(SET, "What does set -Z do? The -Z option of the Bash set builtin hides functions.") == ["-Z"]
    assert missing(SET, "What does it do? It is --login, see `set -o` and `shopt -l`, or -o and -l.") == [
        "--login", "-l", "`shopt -l`"]
    founded = "Rho Bank offers checking and savings accounts."
    assert missing(founded, "Who founded Rho Bank? Rho Bank was founded in 1990 by John Doe.") == [
        "1990", "John Doe"]
    assert missing(founded, "Who runs it? The Rho Bank team, with Savings Accounts.") == []  # names held, any case
    assert missing(TABLE, f"{MONTHLY} The Verified Everyone Pay Accounts limit is $35,000.") == []  # as asked
    assert missing("Bash reads files.", "What does bash -Z do? The -Z option reads files.") == ["-Z"]  # asked too
    venv = "To activate it, run:\n\n$ source ~/envs/tutorial-env/bin/activate\n"
    fenced = "How do I activate it? Run: ```bash\nsource ~/envs/tutorial-env/bin/activate\n```"
    assert missing(venv, fenced) == []  # a fenced block is looked up without its language tag
    assert missing(venv, fenced.replace("envs/", "")) == ["```bash\nsource ~/tutorial-env/bin/activate\n```"]


def test_a_passage_naming_the_product_only_inside_a_longer_name_is_about_another() -> None:
    asked = "What balance waives the Blue Account's monthly fee?"
    true_blue = "True Blue Account: Fee waivers\n- The fee is waived at a balance of $50,000."
    assert missing(true_blue, f"{asked} $50,000") == ["Blue Account"]  # run into a longer name: another account
    assert missing("Blue Account: Fee waivers\n- The Blue Account waives its fee at $625.", f"{asked} $625") == []
    assert missing("Fees\n- Your blue account waives its fee at $625.", f"{asked} $625") == []  # any case
    # A name the passage lacks is no sign: a multi-hop question names the document it bridges from.
    assert missing("Adriana Trigiani lives in Greenwich Village.",
                   "The director of Big Stone Gap is based in what New York city? Greenwich Village") == []


def test_a_passage_titled_with_a_sibling_name_is_about_another() -> None:
    asked = "What is the daily mobile check deposit limit for Lime Green business checking?"
    green = "# Green Account (savings): Mobile banking\n- Transfers out are capped at $5,000 a day."
    lime = "# Lime Green Account: Mobile Deposits\n| Mobile check deposit (per day) | $15,000 |"
    assert missing(green, f"{asked} $5,000") == ["Lime Green"]  # never says "Lime", titled "Green Account"
    assert missing(lime, f"{asked} $15,000") == []
    # The first word held anywhere, the title may shorten the name: not a sibling.
    assert missing("# Green Account\nLime Green business checking allows $15,000 a day.", f"{asked} $15,000") == []
    # Without a title nothing is known of the passage's subject (HaluEval's passages: the rule never fires).
    assert missing("The Green Account caps transfers at $5,000 a day.", f"{asked} $5,000") == []


def test_what_is_asked_and_bounds_are_not_looked_up() -> None:
    assert missing(TABLE, "Is the 2026 limit over $1,000? It is $3,500 a day.") == []  # the question's numbers
    assert missing("It has 52 reviews.", "How many reviews? More than 40 reviews.") == []  # rag.bounds judges it
    assert missing("It came out on 3 May 2015.", "When? It came out before March 3, 2016.") == []  # so this
    assert missing(TABLE, "Which is it? The first one, of seven.") == []  # number words are not checked
    assert missing(TABLE, "What is it? Everyone Pay sends money.") == []  # a sentence's first word is no name


def test_the_verifier_cuts_a_claim_missing_an_item_and_reads_tables_by_row() -> None:
    inner = Echo()
    right, wrong = verify.RuleChecked(inner).scores([(TABLE, f"{MONTHLY} $35,000"), (TABLE, f"{MONTHLY} $3,500")])
    assert right == 0.9 and wrong == pytest.approx(0.09)
    premise = inner.seen[0][0]
    assert "Account status: Verified accounts; Daily send limit: $3,500; Monthly send limit: $35,000." in premise


def test_an_unsupported_sentence_names_what_its_passage_lacks() -> None:
    checked = verify.check(answer("Bees live in hives [1]. Bees live in 12 hives [1].", ["bees live in hives"]),
                           verify.RuleChecked(Echo()))
    assert [s.verdict for s in checked.sentences] == ["supported", "unsupported"]
    assert [s.missing for s in checked.sentences] == [None, ["12"]]
    assert isinstance(checked.sentences[1], cites.Sentence)

