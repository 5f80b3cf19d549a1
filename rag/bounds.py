"""Claims that bound a number ("more than 40 reviews", "under $ 5 million", "after 1950"),
checked by arithmetic against the passage.

A small cross-encoder cannot compare numbers: it scores "more than 40" and "less than 40"
against "52 reviews" alike. So each bound in a claim is matched to the passage's number it
speaks of (same unit, the most shared words around it, a similar size), compared, and the
claim is rewritten with the passage's number in its place ("52 reviews"), which leaves the
model the part it is good at: is the rest of the claim what the passage says. A bound in a
question is asked, not claimed: only the text after a claim's last "?" is checked. A passage's
number may be a bound itself ("over 1,600,000"): "more than 1,500,000" then holds, and "more than
2,000,000" cannot be decided. Numbers may be words up to twenty and the tens ("seven months"); dates
are bounded by "before" and "after" ("before October 18, 1980"), compared at the detail the claim
gives (day, month or year) with a passage's date of that same detail.
"""

from __future__ import annotations

import operator
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, replace

ABOVE = ("more than", "greater than", "higher than", "over", "above", "exceeding", "after")
BELOW = ("less than", "fewer than", "lower than", "under", "below", "before")
INCLUSIVE = {"at least": operator.ge, "at most": operator.le}
COMPARE: Mapping[str, Callable[[float, float], bool]] = (
    {w: operator.gt for w in ABOVE} | {w: operator.lt for w in BELOW} | INCLUSIVE)
TIME_WORDS = {"after", "before"}  # bound a year or a date, never a quantity ("after 20 minutes" is not checked)
WORD = re.compile(r"[a-z]+")
SCALE = {"thousand": 1e3, "million": 1e6, "billion": 1e9, "trillion": 1e12}
WORDS = {w: n + 1 for n, w in enumerate(WORD.findall("one two three four five six seven eight nine ten eleven twelve "
                                                     "thirteen fourteen fifteen sixteen seventeen eighteen nineteen "
                                                     "twenty"))} | {
    w: 10 * (n + 3) for n, w in enumerate(WORD.findall("thirty forty fifty sixty seventy eighty ninety"))}
# "$ 12.5 million", "1,998", "62 %", "7.1/10", "seven": currency, digits or word, scale word, unit.
NUMBER = (r"(\$\s?)?(\d{1,3}(?:,\d{3})+|\d+(?:\.\d+)?|" + "|".join(WORDS)
          + r")(?:\s*(thousand|million|billion|trillion)\b)?(\s*%|/\d+)?(?![\w/])")
WORDING = "|".join(sorted(COMPARE, key=len, reverse=True))
BOUND = re.compile(rf"\b({WORDING})\s+" + NUMBER, re.IGNORECASE)
QUANTITY = re.compile(r"(?<![\w.,/-])" + NUMBER, re.IGNORECASE)
MONTHS = {m: n + 1 for n, m in enumerate(WORD.findall("january february march april may june july august september "
                                                      "october november december"))}
DATE = re.compile(rf"\b(?:\d{{1,2}}\s+)?(?:{'|'.join(MONTHS)})(?:\s+\d{{1,2}}(?!\d))?(?:\s*,?\s*\d{{4}})?(?!\w)",
                  re.IGNORECASE)
DATE_BOUND = re.compile(rf"\b(before|after)\s+({DATE.pattern})", re.IGNORECASE)
BOUNDED_BEFORE = re.compile(rf"\b({WORDING})\s+$", re.IGNORECASE)  # a passage's own bound: "over 1,600,000"
IGNORED = frozenset(WORD.findall("the a an of in on and or to is was are were has have had with by for at as "
                                 "its it this that from be been based than more less over under fewer after "
                                 "before least most"))
WINDOW = 5  # words each side of a number that say what it counts


@dataclass(frozen=True)
class Quantity:
    value: float
    unit: str  # "%", "/10", "$", "" or a date's detail ("date:ymd")
    year_like: bool  # four digits from 1500 to 2099, nothing around them
    start: int
    end: int
    bound: str = ""  # the passage's own bound word before it ("over"), if any
    lead: int = -1  # where that bound word starts (else `start`)


@dataclass(frozen=True)
class Checked:
    holds: bool  # every bound in the claim holds for the passage's number
    claim: str  # the claim with each bound replaced by the passage's number


def check(premise: str, claim: str) -> Checked | None:
    """The claim's bounds compared with the passage's numbers, or None when the claim has no
    bound that can be matched to exactly one of them (then only the model can judge)."""
    checked = claim.rfind("?") + 1
    numbers = quantities(premise)
    dates = [_day(m, 0) for m in DATE.finditer(premise)]
    candidates = [_bounded(premise, q) for q in (*numbers, *dates) if q is not None]
    results, rewritten = [], claim
    claimed = [(m, _quantity(m, 2)) for m in BOUND.finditer(claim, checked)]
    for bound, bounded in [*claimed, *((m, _day(m, 2)) for m in DATE_BOUND.finditer(claim, checked))]:
        word = bound.group(1).lower()
        if bounded is None or (word in TIME_WORDS and not (bounded.year_like or bounded.unit.startswith("date"))):
            continue
        found = _match(premise, candidates, claim, bounded, bounded.year_like and word in TIME_WORDS)
        holds = None if found is None else _holds(word, bounded.value, found)
        if found is None or holds is None:
            continue
        results.append(holds)
        rewritten = rewritten.replace(bound.group(0), premise[found.lead:found.end], 1)
    return Checked(all(results), rewritten) if results else None


def quantities(text: str, start: int = 0) -> list[Quantity]:
    """Every number in `text` from `start` on (digits or a number word, with currency, scale and unit)."""
    return [_quantity(m, 1) for m in QUANTITY.finditer(text, start)]


def _holds(word: str, limit: float, found: Quantity) -> bool | None:
    """Does the claim's "`word` `limit`" hold for the passage's number; None when the passage's
    own bound leaves it open ("over 100" says nothing of "more than 200")."""
    if not found.bound:
        return COMPARE[word](found.value, limit)
    claim_above, passage_above = COMPARE[word](1, 0), COMPARE[found.bound](1, 0)
    beyond = found.value >= limit if passage_above else found.value <= limit
    if claim_above == passage_above:
        return True if beyond else None
    return False if beyond else None


def _match(premise: str, candidates: list[Quantity], claim: str, bounded: Quantity, year: bool) -> Quantity | None:
    """The passage's number the bound speaks of: same unit, a year for a year; scored by the
    words around both, the word after both ("reviews"), and a size within a factor of two.
    None when nothing matches or two different numbers tie."""
    around, after = _around(claim, bounded), _next_word(claim, bounded.end)
    scored = []
    for found in candidates:
        if found.unit != bounded.unit or (year and not found.year_like) or (
                found.year_like and not bounded.year_like):
            continue
        near = bounded.value > 0 and 0.5 <= found.value / bounded.value <= 2
        score = len(around & _around(premise, found)) + 2 * bool(after and after == _next_word(premise, found.end))
        scored.append((score + 1.5 * near, found))
    scored.sort(key=lambda s: -s[0])
    if not scored or (len(scored) > 1 and (scored[0][0] == 0 or (
            scored[0][0] == scored[1][0] and scored[0][1].value != scored[1][1].value))):
        return None
    return scored[0][1]


def _day(found: re.Match[str], group: int) -> Quantity | None:
    """A date as a number of its own unit: "date:ymd" for "18 October 1977", "date:md" for "March
    17", "date:ym" for "March 2020"; None for a month alone."""
    text = found.group(group).lower()
    month = MONTHS[next(w for w in WORD.findall(text) if w in MONTHS)]
    year = next((int(n) for n in re.findall(r"\d+", text) if len(n) == 4), 0)
    day = next((int(n) for n in re.findall(r"\d+", text) if len(n) <= 2), 0)
    if not (year or day):
        return None
    unit = "date:" + "y" * bool(year) + "m" + "d" * bool(day)
    return Quantity(year * 400 + month * 32 + day, unit, False, found.start(group), found.end(group))


def _bounded(premise: str, quantity: Quantity) -> Quantity:
    """`quantity` with the passage's own bound word before it, if any ("over 1,600,000")."""
    before = BOUNDED_BEFORE.search(premise, max(0, quantity.start - 20), quantity.start)
    if before is None:
        return replace(quantity, lead=quantity.start)
    return replace(quantity, bound=before.group(1).lower(), lead=before.start())


def _quantity(found: re.Match[str], first: int) -> Quantity:
    currency, digits, scale, unit = found.group(first, first + 1, first + 2, first + 3)
    value = float(WORDS.get(digits.lower()) or digits.replace(",", "")) * SCALE.get((scale or "").lower(), 1)
    year_like = digits.isdigit() and not (unit or scale) and len(digits) == 4 and 1500 <= value < 2100
    return Quantity(value, (unit or "").replace(" ", "") or ("$" if currency else ""), year_like,
                    found.start(first if currency else first + 1), found.end())


def _around(text: str, quantity: Quantity) -> set[str]:
    before = WORD.findall(text[: quantity.start].lower())[-WINDOW:]
    after = WORD.findall(text[quantity.end:].lower())[:WINDOW]
    return {w for w in before + after if w not in IGNORED}


def _next_word(text: str, end: int) -> str:
    found = re.match(r"\s*([A-Za-z]+)", text[end:])
    return found.group(1).lower() if found else ""
