"""What a claim states that its passage must hold word for word: numbers, names and flags.

A small cross-encoder scores "The -Z option of set does not display function names" or "The
monthly limit is $3,500" as supported by a passage on the same topic: it reads meaning, not
values. But an answer drawn from the passage repeats its values. So every number, money amount
and percentage, command-line option flag (`-Z`, `--login`), code name in backticks and
capitalised multi-word name (not counting a sentence's first word) in the claim's answer (the
text after its last "?": the question's own words are asked, not claimed) must occur in the
passage: numbers by value ("$3,500" = "3,500" = "3500"; a bound such as "more than 40" or
"before March 3, 2016" is rag.bounds' to judge), flags exactly, names ignoring case (each word
of a multi-word name somewhere in the passage; a name the question says is what is asked about,
often named only in a document's title or a bridging document, and need not be; but a passage
titled with a longer name holding it, and holding it nowhere on its own, is about another thing:
the "True Blue Account" is not the "Blue Account"; nor is a passage titled with a sibling's name
that never says the asked name's first word: the "Green Account" is not "Lime Green"). A number
the passage holds only in table cells of another row or column than the claim names ("monthly" for a cell of the "Daily
send limit" column, rag.tables.misread) is missing too: it is there, but as another thing's value.
"""

from __future__ import annotations

import re

from rag import bounds, tables

FLAG = re.compile(r"(?<![\w-])--?[A-Za-z][\w-]*")
# Code in backticks, or a fenced block (its language tag aside: "```bash\nsource env/bin/activate\n```").
CODE = re.compile(r"```[\w+-]*\s*([^`]+?)\s*```|`([^`\n]+)`")
NAME = re.compile(r"\b[A-Z][\w'’-]*(?:[ \t]+[A-Z][\w'’-]*)+")
WORD = re.compile(r"[\w'’-]+")


def missing(premise: str, claim: str) -> list[str]:
    """The items of `claim`'s answer that `premise` does not hold, in the order claimed (a number
    held only as another row's or column's value is named with what it is there)."""
    said = claim.rfind("?") + 1
    code = list(CODE.finditer(claim, said))
    found = [m.group() for m in FLAG.finditer(claim, said)
             if not any(c.start() < m.start() < c.end() for c in code)  # code is looked up whole
             and not re.search(rf"(?<![\w-]){re.escape(m.group())}(?![\w-])", premise)]
    flat = " ".join(premise.casefold().split())
    found += [m.group() for m in code if " ".join((m.group(1) or m.group(2)).casefold().split()) not in flat]
    words = {w.casefold() for w in WORD.findall(premise)}
    asked = " ".join(claim[:said].casefold().split())
    found += [name for name in _names(claim, said) if " ".join(name.casefold().split()) not in asked
              and not all(w.casefold() in words for w in name.split())]
    found += [name for name in _asked(claim[:said]) if _titled_otherwise(name, premise) or _titled_kin(name, premise)]
    return _numbers(premise, claim, said) + found


def _numbers(premise: str, claim: str, said: int) -> list[str]:
    bounded = [(m.start(), m.end()) for pattern in (bounds.BOUND, bounds.DATE_BOUND)
               for m in pattern.finditer(claim, said)]
    held = [q for q in bounds.quantities(premise) if _digits(premise, q)]
    grid = tables.cells(premise)
    out = []
    for number in bounds.quantities(claim, said):
        text = claim[number.start:number.end]
        if not _digits(claim, number) or any(a <= number.start < b for a, b in bounded):
            continue
        spots = [q for q in held if q.value == number.value]
        cells = [tables.within(grid, q.start, q.end) for q in spots]
        if not spots:
            out.append(text)
        elif all(cells):
            rivals = [tables.misread(claim, c) for c in cells if c is not None]
            if all(rivals) and cells[0] is not None:
                out.append(f"{text} (the passage's {cells[0].row} / {cells[0].column}, not {rivals[0]})")
    return out


def _digits(text: str, quantity: bounds.Quantity) -> bool:
    """A number written in digits (a number word such as "one" is too often not a value)."""
    return any(c.isdigit() for c in text[quantity.start:quantity.end])


# Words that may stand capitalised before a name without being part of it ("The Blue Account",
# "Which Blue Account").
_BEFORE = {"the", "a", "an", "your", "our", "my", "this", "that", "these", "those", "each", "every", "its", "their",
           "for", "with", "in", "on", "of", "to", "and", "or", "by", "at", "from", "as", "is", "are", "was", "were",
           "before", "after", "since", "during", "until",
           "what", "which", "who", "whom", "whose", "where", "when", "why", "how", "do", "does", "did", "can", "could",
           "will", "would", "should", "has", "have", "had", "if", "i", "me", "we"}


def _asked(question: str) -> list[str]:
    """The names a question asks about: runs of two or more capitalised words, a leading question word
    or article left out ("Which Blue Account" names the Blue Account; "Sunny Day Real Estate" is whole)."""
    out = []
    for run in NAME.finditer(question):
        words = run.group().split()
        while words and words[0].casefold() in _BEFORE:
            words.pop(0)
        if len(words) > 1:
            out.append(_unpossessive(" ".join(words)))
    return out


def _titled_otherwise(name: str, premise: str) -> bool:
    """Whether `premise` is titled with a longer name that holds the question's `name` ("True Blue
    Account: Fee Waivers" for the "Blue Account") and holds `name` nowhere on its own: a passage about
    another thing. Only a title counts, as a person's full name in a text ("Wardell Stephen Curry"
    for "Stephen Curry") is the same person; and a name the premise lacks is no sign either way (a
    multi-hop question names the document it bridges from, not the answer's)."""
    phrase = r"\s+".join(map(re.escape, name.split()))
    found = list(re.finditer(rf"(?<![\w'’-]){phrase}(?![\w-])", premise, re.IGNORECASE))
    return (bool(found) and all(_run_into(premise, m.start()) for m in found)
            and any(_title(premise, m.start()) for m in found))


def _titled_kin(name: str, premise: str) -> bool:
    """Whether `premise` never says the first word of the question's `name` and is titled with a kin
    name holding the next one ("Green Account" for "Lime Green", "Bronze Rewards Card" for "Silver
    Rewards Card"): the passage is about a sibling product, whose values are not the asked one's.
    The first word is what tells siblings apart; a passage that holds it somewhere may still be
    about the thing asked (its title may shorten the name)."""
    first, *rest = [w.casefold() for w in name.split()]
    if not rest or first in {w.casefold() for w in WORD.findall(premise)}:
        return False
    return any(_title(premise, run.start()) and rest[0] in {w.casefold() for w in run.group().split()}
               for run in NAME.finditer(premise))


def _title(premise: str, at: int) -> bool:
    """Whether position `at` is on a title line: a Markdown heading, or a short first line that is no
    sentence (a heading path such as "True Blue Account: Fee Waivers > Overdrafts")."""
    start = premise.rfind("\n", 0, at) + 1
    end = premise.find("\n", at)
    line = premise[start:end if end >= 0 else len(premise)].strip()
    return line.startswith("#") or (start == 0 and len(line) <= 120 and not line.endswith((".", "!", "?")))


def _run_into(premise: str, start: int) -> bool:
    """Whether the word before `start` (on the same line) is capitalised and no article or the like."""
    before = re.search(r"([\w'’-]+)[ \t]+$", premise[:start])
    return before is not None and before.group(1)[0].isupper() and before.group(1).casefold() not in _BEFORE


def _unpossessive(name: str) -> str:
    """`name` without a possessive ending: "the Blue Account's fee" names the Blue Account."""
    return re.sub(r"['’]s$", "", name)


def _names(claim: str, said: int) -> list[str]:
    """Runs of two or more capitalised words after `said`, a sentence's first word left out."""
    first = re.search(r"\w", claim[said:])
    start = said + first.start() if first else said
    out = []
    for run in NAME.finditer(claim, said):
        text = run.group()
        if run.start() == start or claim[:run.start()].rstrip().endswith((".", "!", ":")):
            text = text.split(None, 1)[1] if len(text.split()) > 1 else ""
        text = _unpossessive(text)
        if len(text.split()) > 1:
            out.append(text)
    return out
