"""The rule condenser: a follow-up written out against the previous question by word patterns,
with no model (rag.conversation's `rule`).

English follow-ups mostly come in two shapes. An elliptical one names only what changes
("And for unverified ones?", "What about BASHPID?"): it takes the place of the matching phrase
of the previous question (the same preposition, the same head noun, the same kind of code
token, or the question's topic). A referring one is a full question with a pronoun for the
previous topic ("How many withdrawals does it allow?"): the pronoun is replaced by the thing
the previous question was about. In either, a modifier + "one" ("the Silver one", "an instant one")
stands for the previous topic with that modifier in place of its own; "Is it the same for X?" is the
previous question for X. Anything too short to tell ("Why?") is joined to the previous question;
anything else is taken as already standalone.
"""

from __future__ import annotations

import re

# Words that start an elliptical follow-up ("And for unverified ones?", "What about Bash?").
_LEAD = re.compile(r"^(?:and\s+)?(?:what|how)\s+about\s+|^(?:and|also|but)\s+", re.IGNORECASE)
_QUESTION_WORDS = (r"(?:what|which|who|whom|whose|when|where|why|how|is|are|was|were|do|does|did|"
                   r"can|could|should|would|will|may|must|has|have)\b")
_QUESTION_WORD = re.compile(f"^{_QUESTION_WORDS}", re.IGNORECASE)
PREPOSITIONS = ("for", "in", "on", "with", "at", "to", "from", "of", "by", "during", "after", "before",
                "under", "over", "into", "inside", "between", "without")
_DETERMINERS = ("the", "a", "an", "my", "your", "our", "its", "their", "this", "that")
_POSSESSIVE = ("its", "their")
# A pronoun for the previous topic: it, its, they, them, their anywhere; this, that, these, those
# only where they stand alone (at the end, or before a verb such as "is" or "mean").
_PRONOUN = re.compile(r"\b(?:this|that|these|those)\b(?=\s*(?:\?|$|\s(?:is|are|was|were|do|does|did|mean|"
                      r"means|return|returns|cost|costs|take|takes|work|works|have|has|happen|happens|apply|"
                      r"applies)\b))|\b(?:it|its|they|them|their)\b", re.IGNORECASE)
_DET = r"(?:the|a|an|my|your|our)\s"
# The topic of a question: "What is T", "How do I <verb> T", "What (...) does T <verb>".
_TOPICS = (re.compile(r"^(?:what|which|who)\s+(?:is|are|was|were)\s+(?P<t>.+)$", re.IGNORECASE),
           re.compile(rf"^.*?\b(?:I|you|we)\s+\w+\s+(?P<t>{_DET}.+)$", re.IGNORECASE),
           re.compile(rf"^(?i:what|how|why|when|where|which)\b.*?\b(?:does|do|did|can|will|would|should)\s+"
                      rf"(?P<t>{_DET}.+?|[A-Z$`_][^\s]*(?:\s[A-Z][^\s]*)*)\s+\w+(?:\s+to\s+\w+)?$"))
# A named thing at the end of a topic: "the debit card limit on [the Blue Account]".
_NAMED_OBJECT = re.compile(rf"\b(?:{'|'.join(PREPOSITIONS)})\s+(?P<o>(?:the\s+)?[A-Z][\w-]*(?:\s+[A-Z][\w-]*)*)$")
_NAMES = re.compile(r"(?:\bthe\s+)?\b[A-Z][\w-]*(?:\s+[A-Z][\w-]*)*")
# "one(s)" after one to three modifiers ("the Silver one", "for unverified ones"), which follow a
# determiner, a preposition or the start of the phrase: "Which one?", "to use one" and "Do you
# have one?" name no modifier, and are left alone.
_BOUND = "|".join((*_DETERMINERS, *(p for p in PREPOSITIONS if p != "to"), "which"))
_ONE = re.compile(rf"(?:^|\b(?:{_BOUND})\s)(?P<mods>(?:(?!(?:{_BOUND})\s|{_QUESTION_WORDS})[\w-]+\s)"
                  rf"{{1,3}})(?P<one>ones?)\b", re.IGNORECASE)
# "Is it the same for savings accounts?": the previous question, for savings accounts.
_SAME = re.compile(r"^(?:and\s+)?(?:is|are|does|do)\s+(?:it|that|this)\s+the\s+same\s+"
                   r"(?P<rest>(?:for|in|on|with)\s.+)$", re.IGNORECASE)
_CODE = re.compile(r"^(?:\$\S+|`[^`]+`|\S*[_()]\S*|[A-Z][A-Z0-9]+)$")  # $?, BASH_VERSION, set(), `x`


def bare(question: str) -> str:
    return question.strip().rstrip("? ").strip()


def topic(question: str) -> str | None:
    """What `question` asks about, by the patterns above."""
    for pattern in _TOPICS:
        if match := pattern.match(bare(question)):
            return match.group("t")
    return None


def referent(question: str) -> str | None:
    """What a pronoun after `question` stands for: the thing its topic names ("the limit on the
    Blue Account" -> "the Blue Account"), the topic itself, or else the last name it holds."""
    found = topic(question)
    if found is not None:
        named = _NAMED_OBJECT.search(found)
        return named.group("o") if named and found.lower().startswith("the ") else found
    names = _names(question)
    return names[-1] if names else None


def _names(question: str) -> list[str]:
    """The capitalised names in `question` after its first word ("the Blue Account", "APR")."""
    return _NAMES.findall(bare(question).split(" ", 1)[-1])


def rewrite(question: str, previous: str | None) -> str:
    """`question` written out against `previous` (the previous question, itself standalone)."""
    if previous is None:
        return question
    asked = question.strip()
    lead = _LEAD.match(asked)
    rest = asked[lead.end():] if lead else asked
    if lead and rest and not _QUESTION_WORD.match(rest):
        if _PRONOUN.search(rest) and (thing := referent(previous)):  # "And its annual fee?"
            return f"What is {_replace_pronoun(bare(rest), thing)}?"
        return substitute(bare(rest), previous)
    if same := _SAME.match(bare(rest)):
        return substitute(same.group("rest"), previous)
    if _PRONOUN.search(rest) and (thing := referent(previous)):
        return _capital(_replace_pronoun(rest, thing))
    if (ones := _ONE.search(rest)) and (phrase := _one_phrase(ones, previous)):  # "an instant one"
        return _capital(fill_ones(rest, phrase))
    if len(bare(rest).split()) <= 2:
        return f"{previous.strip()} {asked}"
    return _capital(rest)


def _capital(text: str) -> str:
    return text[:1].upper() + text[1:]


def _replace_pronoun(text: str, thing: str) -> str:
    """The first pronoun of `text` replaced by `thing` ("its fee" -> "the Blue Account's fee")."""
    return _PRONOUN.sub(lambda m: thing + ("'s" if m.group().lower() in _POSSESSIVE else ""), text, 1)


def substitute(fragment: str, previous: str) -> str:
    """`previous` with `fragment` in place of its matching phrase, tried in this order: the
    object of the same preposition (or of the last one), the phrase a modified "one" stands for,
    the phrase with the same head noun, the same kind of code token, the topic, the object of the
    last preposition; else the two joined."""
    words = bare(previous).split()
    parts = fragment.split()
    first = parts[0].lower()
    if first in PREPOSITIONS:
        at = _last_preposition(words, first)
        at = at if at is not None else _last_preposition(words)  # "of True Blue" -> "for the Orange ..."
        if at is not None:
            return _joined([*words[:at], fill_ones(fragment, " ".join(words[at + 1:]))])
        return f"{bare(previous)} {fragment}?"
    if (ones := _ONE.search(fragment)) and (phrase := _one_phrase(ones, previous)):  # "the Silver one"
        return bare(previous).replace(phrase, fill_ones(fragment, phrase), 1) + "?"
    if (span := _same_head(words, fragment)) is not None:
        return _joined([*words[:span[0]], fragment, *words[span[1]:]])
    codes = [n for n, w in enumerate(words) if _CODE.match(w)]
    if len(parts) == 1 and _CODE.match(fragment) and codes:
        return _joined([*words[:codes[-1]], fragment, *words[codes[-1] + 1:]])
    if (found := topic(previous)) is not None:
        kept = found.split()
        if len(parts) == 1 and len(kept) > 2 and kept[0].lower() in _DETERMINERS:  # "the break statement"
            return bare(previous).replace(found, " ".join([kept[0], fragment, *kept[2:]]), 1) + "?"
        return bare(previous).replace(found, fill_ones(fragment, found), 1) + "?"
    at = _last_preposition(words)
    if at is not None:
        return _joined([*words[:at + 1], fill_ones(fragment, " ".join(words[at + 1:]))])
    return f"{bare(previous)} {fragment}?"


def _joined(words: list[str]) -> str:
    return " ".join(words) + "?"


def _last_preposition(words: list[str], wanted: str | None = None) -> int | None:
    """The index of the last preposition in `words` (the last `wanted`, when given) that has an object."""
    found = [n for n, w in enumerate(words[:-1]) if (w.lower() == wanted if wanted else w.lower() in PREPOSITIONS)]
    return found[-1] if found else None


def _stem(word: str) -> str:
    return word.lower().strip("`'\",()").removesuffix("s")


def _same_head(words: list[str], fragment: str) -> tuple[int, int] | None:
    """The span of `words` ending in the fragment's last word ("the monthly limit" matches "the
    daily send limit"): from the nearest determiner or preposition before it, or as many words
    as the fragment."""
    head = _stem(fragment.split()[-1])
    ends = [n for n, w in enumerate(words) if _stem(w) == head]
    if not ends:
        return None
    end = ends[-1]
    bounds = [n for n in range(end, -1, -1) if words[n].lower() in (*_DETERMINERS, *PREPOSITIONS)]
    if not bounds:
        return max(0, end - len(fragment.split()) + 1), end + 1
    return bounds[0] + (words[bounds[0]].lower() in PREPOSITIONS), end + 1


def _one_phrase(ones: re.Match[str], previous: str) -> str | None:
    """The phrase of `previous` that a modified "one(s)" stands for: a capitalised modifier ("the
    Titanium one") names a product like the last name in `previous` ("the Silver Rewards Card");
    "ones" the plural object of the last preposition ("verified Everyone Pay accounts"); else the
    previous topic ("a standard Everyone Pay transfer")."""
    names = _names(previous)
    if ones.group("mods")[:1].isupper() and names:
        return names[-1]
    words = bare(previous).split()
    at = _last_preposition(words)
    if ones.group("one").lower() == "ones" and at is not None and words[-1].endswith("s"):
        return " ".join(words[at + 1:])
    return topic(previous)


def fill_ones(fragment: str, replaced: str) -> str:
    """`fragment` with its modified "one(s)" written out as the noun it stands for in `replaced`
    ("the Silver one" against "the Gold Savings Account" -> "the Silver Savings Account")."""
    match = _ONE.search(fragment)
    if match is None:
        return fragment
    noun = head(replaced, match.group("mods").split())
    return fragment[:match.start("one")] + noun + fragment[match.end("one"):]


def head(phrase: str, modifiers: list[str]) -> str:
    """What "one" after `modifiers` stands for in `phrase`: the phrase less its determiner and its
    first words of the same kind (capitalised or not) as the modifiers, which they replace: "a
    standard Everyone Pay transfer" after "instant" -> "Everyone Pay transfer". When all the words
    before the phrase's preposition are of that kind, the noun keeps its last word ("the break
    statement" -> "statement") or, of three or more, its last two, as a product's kind ("Diamond
    Elite Savings Account" -> "Savings Account", "daily send limit for ..." -> "send limit for ...")."""
    words = phrase.split()
    words = words[1:] if words and words[0].lower() in _DETERMINERS else words
    end = next((n for n, w in enumerate(words) if w.lower() in PREPOSITIONS), len(words))
    capital = modifiers[0][:1].isupper()
    run = next((n for n, w in enumerate(words[:end]) if w[:1].isupper() != capital), end)
    if run == end:
        run = max(0, end - (2 if end >= 3 else 1))
    return " ".join(words[run:])
