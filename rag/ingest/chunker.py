"""Cut a Document into chunks that fit the embedder, keeping exact offsets into the text.

Lengths are counted with the embedder's own tokenizer, so no chunk is silently
truncated at embedding time: every chunk, its context line (document title and heading
path, cut to the room left) and the model's special tokens fit the model's limit.
`doc.text[chunk.start:chunk.end] == chunk.text` always holds.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from typing import Protocol

from rag.ingest.loaders import Document

# Regex separators, coarsest first. Sentence ends split on the space after the period.
_PROSE = ["\n\n", "\n", r"(?<=[.!?;:]) ", " ", ""]
MIN_TOKENS = 24  # pieces smaller than this are joined to a neighbour when they fit
# A joined piece never spans more characters than this per token of the budget. Prose has about five;
# a run the tokenizer reads as one unknown token (300,000 accented letters without a space) would
# otherwise grow by joining forever, each join counted again: quadratic, 15 s for one such file.
MAX_CHARS_PER_TOKEN = 16
_MARKDOWN = [r"\n#{1,6} ", r"```\n", r"\n\*\*\*+\n", r"\n---+\n", r"\n___+\n", *_PROSE]


class Tokenizer(Protocol):
    def encode(self, text: str, add_special_tokens: bool = ...) -> list[int]: ...

    def num_special_tokens_to_add(self, pair: bool = ...) -> int: ...


@dataclass(frozen=True)
class ChunkConfig:
    chunk_tokens: int = 200  # target size of a chunk, in tokens without special tokens
    overlap_tokens: int = 32  # tokens shared by neighbouring chunks

    def __post_init__(self) -> None:
        if self.chunk_tokens < 8:
            raise ValueError(f"chunk_tokens must be at least 8, got {self.chunk_tokens}")
        if not 0 <= self.overlap_tokens < self.chunk_tokens:
            raise ValueError(f"overlap_tokens must be in [0, chunk_tokens), got {self.overlap_tokens}")


@dataclass(frozen=True)
class Chunk:
    ordinal: int  # position within its document
    start: int
    end: int
    text: str
    page: int | None
    heading: str
    n_tokens: int  # including the embedder's special tokens
    context: str = ""  # title and heading path, embedded and indexed with the text, never shown

    @property
    def embedded(self) -> str:
        """What the embedder and BM25 see: the context line, then the exact text."""
        return f"{self.context}\n\n{self.text}" if self.context else self.text


class Chunker:
    def __init__(self, tokenizer: Tokenizer, max_tokens: int, config: ChunkConfig) -> None:
        """`max_tokens` is the model's input limit including special tokens."""
        self.tokenizer = tokenizer
        self.specials = tokenizer.num_special_tokens_to_add(pair=False)
        self.room = max_tokens - self.specials  # text plus context line
        self.budget = min(config.chunk_tokens, self.room)
        if self.budget < 8:
            raise ValueError(f"model limit of {max_tokens} tokens leaves no room for chunks")
        self.overlap = min(config.overlap_tokens, self.budget // 2)
        # The splitter measures the same pieces again as it merges them (61 % of calls on the
        # demo corpus); caching halves the chunking time, which competes with embedding for cores.
        self.count = functools.lru_cache(maxsize=8192)(self._count)

    def _count(self, text: str) -> int:
        return len(self.tokenizer.encode(text, add_special_tokens=False))

    def split(self, doc: Document) -> list[Chunk]:
        chunks: list[Chunk] = []
        separators = _MARKDOWN if doc.kind == "markdown" else _PROSE
        for page in doc.pages:
            page_text = doc.text[page.start : page.end]
            pieces = self._merge_small(page_text, self._split_exact(page_text, self.budget, separators))
            for start, piece, n in pieces:
                begin = page.start + start
                chunks.append(Chunk(len(chunks), begin, begin + len(piece), piece, page.number,
                                    doc.heading_at(begin), n + self.specials,
                                    self._fit(doc.context_at(begin), self.room - n)))
        return chunks

    def _fit(self, context: str, room: int) -> str:
        """`context` cut at a word so that it fits in `room` tokens ("" when nothing fits)."""
        words = context.split()
        while words and self.count(" ".join(words)) > room:
            words = words[: min(len(words) - 1, room)]  # a word is at least one token
        return " ".join(words)

    def _merge_small(self, text: str, pieces: list[tuple[int, str, int]]) -> list[tuple[int, str, int]]:
        """Fold pieces under MIN_TOKENS (a lone heading, a trailing line) into a neighbour when the
        joined span still fits: on their own they match many queries and answer none."""
        out: list[tuple[int, str, int]] = []
        for piece in pieces:
            if out and (out[-1][2] < MIN_TOKENS or piece[2] < MIN_TOKENS):
                start = out[-1][0]
                joined = text[start : piece[0] + len(piece[1])]
                n = self.count(joined) if len(joined) <= self.budget * MAX_CHARS_PER_TOKEN else self.budget + 1
                if n <= self.budget:
                    out[-1] = (start, joined, n)
                    continue
                if out[-1][2] < MIN_TOKENS:  # the next piece is full: overlap into it instead
                    out[-1] = self._extend(text, out[-1], piece[0] + len(piece[1]))
            out.append(piece)
        return out

    def _extend(self, text: str, piece: tuple[int, str, int], limit: int) -> tuple[int, str, int]:
        """`piece` run on towards `limit` as far as the budget allows, ending at whitespace."""
        start, best = piece[0], piece
        lo, hi = start + len(piece[1]), limit
        while lo < hi:  # binary search on the end offset; counts grow with the span
            mid = (lo + hi + 1) // 2
            cut = mid if text[mid - 1].isspace() else max(text.rfind(" ", lo, mid), text.rfind("\n", lo, mid))
            span = text[start : cut if cut > lo else mid].rstrip()
            n = self.count(span)
            if n <= self.budget:
                best, lo = (start, span, n), mid
            else:
                hi = mid - 1
        return best

    def _split_exact(self, text: str, budget: int, separators: list[str]) -> list[tuple[int, str, int]]:
        """(offset, text, tokens) of each piece; pieces the splitter let run over are split again.

        The splitter adds up piece lengths, which can undercount tokens across a join,
        so every piece is counted once more as it will be embedded.
        """
        from langchain_text_splitters import RecursiveCharacterTextSplitter  # 0.8 s to import: not for searches

        splitter = RecursiveCharacterTextSplitter(
            separators=separators, is_separator_regex=True, keep_separator="start",
            chunk_size=budget, chunk_overlap=min(self.overlap, budget // 2), length_function=self.count,
        )
        out: list[tuple[int, str, int]] = []
        cursor = 0
        for piece in splitter.split_text(text):
            offset = text.find(piece, cursor)
            if offset < 0:  # not expected: the splitter only strips; fall back to a full search
                offset = text.find(piece)
            cursor = offset + 1
            n = self.count(piece)
            if n <= budget:
                out.append((offset, piece, n))
            else:
                smaller = max(8, budget - (n - budget) - 8)
                out.extend((offset + o, p, c) for o, p, c in self._split_exact(piece, smaller, separators))
        return out
