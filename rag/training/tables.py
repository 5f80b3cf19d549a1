"""Synthetic table questions for the reader: invented products, tiers and values in Markdown
tables, asked about by template.

HaluEval, the only QA data the reader may train on, has no tables, yet product terms in
real documents often are one: a value must be read off the row and the column a question
names, and a page about another product with the same table holds no answer. These examples
teach both. Every name and value is drawn at random from the lists below, so nothing is
learned about any real corpus; the evaluation sets are never read.
"""

from __future__ import annotations

import random
from collections.abc import Callable
from dataclasses import dataclass

_NAMES = ["Aurora", "Beacon", "Cedar", "Delta", "Ember", "Falcon", "Granite", "Harbor", "Indigo", "Juniper",
          "Kestrel", "Lumen", "Meridian", "Nova", "Onyx", "Pioneer", "Quartz", "Summit", "Tidal", "Vertex",
          "Willow", "Zephyr", "Atlas", "Crescent", "Horizon", "Maple", "Orbit", "Prism", "Sierra", "Solstice"]
_KINDS = ["Plan", "Card", "Account", "Membership", "Package", "Subscription", "Loan", "Policy", "Service", "Pass"]
_TIERS = ["Basic", "Standard", "Premium", "Student", "Business", "Verified", "New", "Senior", "Family", "Trial",
          "Gold", "Silver", "Bronze", "Enterprise", "Personal", "Starter", "Pro", "Elite", "Joint", "Youth"]
_TIER_HEADERS = ["Tier", "Account type", "Status", "Level", "Plan", "Customer type"]
_SECTIONS = ["Limits", "Fees", "Features", "Rates", "Benefits", "Terms", "Overview", "Eligibility"]


def _money(rng: random.Random) -> str:
    value = rng.choice([rng.randint(1, 99) * 5, rng.randint(1, 200) * 50, rng.randint(1, 500) * 1000])
    return f"${value:,}" + (".00" if rng.random() < 0.2 else "")


def _percent(rng: random.Random) -> str:
    return f"{rng.randint(1, 2999) / 100:.2f}%" if rng.random() < 0.6 else f"{rng.randint(1, 30) / 2:.1f}%"


def _duration(rng: random.Random) -> str:
    return rng.choice([f"{rng.randint(1, 48)} hours", f"{rng.randint(1, 10)} business days",
                       f"{rng.randint(5, 90)} minutes", "instant", "same day"])


def _count(rng: random.Random) -> str:
    return str(rng.randint(0, 40)) if rng.random() < 0.7 else rng.choice(["unlimited", "none"])


def _choice(*options: str) -> Callable[[random.Random], str]:
    return lambda rng: rng.choice(options)


# (column header, value maker, how a question asks for it)
_ATTRIBUTES: list[tuple[str, Callable[[random.Random], str], str]] = [
    ("Daily limit", _money, "What is the daily limit"), ("Monthly limit", _money, "What is the monthly limit"),
    ("Annual fee", _money, "How much is the annual fee"), ("Monthly fee", _money, "What is the monthly fee"),
    ("Minimum balance", _money, "What minimum balance is required"),
    ("Minimum deposit", _money, "How much must be deposited at least"),
    ("Credit line", _money, "What credit line is offered"), ("Interest rate", _percent, "What interest rate applies"),
    ("APY", _percent, "What APY is paid"), ("Cashback", _percent, "How much cashback is earned"),
    ("Late fee", _money, "What is the late fee"), ("Processing time", _duration, "How long does processing take"),
    ("Transfer speed", _duration, "How fast are transfers"),
    ("Free withdrawals", _count, "How many free withdrawals are included"),
    ("Devices allowed", _count, "How many devices are allowed"),
    ("Lounge visits", _count, "How many lounge visits are included"),
    ("Support", _choice("24/7 phone", "Email only", "Chat and email", "Dedicated manager"), "What support is offered"),
    ("Overdraft", _choice("Yes", "No", "Up to $500", "Not available"), "Is overdraft available"),
    ("Minimum credit score", _count, "What minimum credit score is needed"),
]

_FILLER = ["Terms may change with 30 days' notice.", "Fees are charged on the first business day of the month.",
           "See the eligibility section for who may apply.", "Values apply to accounts in good standing.",
           "Contact support for details.", "Limits reset at midnight.", "All amounts are in US dollars."]


@dataclass(frozen=True)
class TableQuestion:
    question: str
    passage: str
    context: str  # the heading path the passage sits under (it names the product)
    start: int  # the answer's span in `passage`; -1, -1 when the passage does not answer
    end: int


def questions(n: int, seed: int = 0) -> list[TableQuestion]:
    """`n` questions over fresh random tables: about two thirds answerable, the rest naming a
    product the passage is not about, or a column its table lacks."""
    rng = random.Random(seed)
    return [_question(rng) for _ in range(n)]


def _question(rng: random.Random) -> TableQuestion:
    product = f"{rng.choice(_NAMES)} {rng.choice(_KINDS)}"
    tiers = rng.sample(_TIERS, rng.randint(2, 5))
    attributes = rng.sample(_ATTRIBUTES, rng.randint(2, 4) + 1)
    asked, shown = attributes[0], attributes[1:]
    values = {(t, a[0]): a[1](rng) for t in tiers for a in shown}
    transposed = rng.random() < 0.3
    table = _table(tiers, [a[0] for a in shown], values, rng.choice(_TIER_HEADERS), transposed)
    heading = f"# {product}\n\n" if rng.random() < 0.5 else ""
    intro = f"{product} {rng.choice(_SECTIONS).lower()} by {rng.choice(_TIER_HEADERS).lower()}:"
    passage = f"{heading}{intro}\n\n{table}\n\n{rng.choice(_FILLER)}"
    context = f"{product} > {rng.choice(_SECTIONS)}"
    tier, attribute = rng.choice(tiers), rng.choice(shown)
    kind = rng.random()
    if kind < 0.2:  # the same table on another product's page: no answer here
        other = f"{rng.choice([n for n in _NAMES if not product.startswith(n)])} {product.split()[1]}"
        return TableQuestion(_ask(attribute[2], tier, other, rng), passage, context, -1, -1)
    if kind < 0.33:  # a column the table does not have
        return TableQuestion(_ask(asked[2], tier, product, rng), passage, context, -1, -1)
    value = values[(tier, attribute[0])]
    at = _cell(passage, table, tiers, [a[0] for a in shown], tier, attribute[0], transposed)
    assert passage[at: at + len(value)] == value
    return TableQuestion(_ask(attribute[2], tier, product, rng), passage, context, at, at + len(value))


def _ask(stem: str, tier: str, product: str, rng: random.Random) -> str:
    return rng.choice([f"{stem} for {tier} {product} customers?", f"{stem} for the {tier} tier of the {product}?",
                       f"For the {product}, {stem[0].lower()}{stem[1:]} at the {tier} level?",
                       f"{stem} with a {tier.lower()} {product}?"])


def _table(tiers: list[str], attributes: list[str], values: dict[tuple[str, str], str], tier_header: str,
           transposed: bool) -> str:
    if transposed:
        rows = [["Feature", *tiers]] + [[a, *(values[(t, a)] for t in tiers)] for a in attributes]
    else:
        rows = [[tier_header, *attributes]] + [[t, *(values[(t, a)] for a in attributes)] for t in tiers]
    lines = ["| " + " | ".join(row) + " |" for row in rows]
    lines.insert(1, "|" + "|".join("---" for _ in rows[0]) + "|")
    return "\n".join(lines)


def _cell(passage: str, table: str, tiers: list[str], attributes: list[str], tier: str, attribute: str,
          transposed: bool) -> int:
    """Offset in `passage` of the cell at (tier, attribute)."""
    row, column = (attributes.index(attribute) + 2, tiers.index(tier) + 1) if transposed else \
        (tiers.index(tier) + 2, attributes.index(attribute) + 1)
    line_start = passage.index(table)
    for _ in range(row):
        line_start = passage.index("\n", line_start) + 1
    line = passage[line_start: passage.index("\n", line_start) if "\n" in passage[line_start:] else len(passage)]
    cells = line.split("|")
    offset = line_start + sum(len(c) + 1 for c in cells[: column + 1])
    return offset + 1  # past the space after the bar
