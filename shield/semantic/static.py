"""The fast level-2 embedder: a static token-embedding table distilled offline from MiniLM.

``scripts/distill_semantic.py`` runs all-MiniLM-L6-v2 (through sentence-transformers)
once over every token of its vocabulary, model2vec-style (``[CLS] token [SEP]``, mean
pooled), reduces the vectors with PCA, weights them by SIF and stores them as float16 in
``model/vectors.npy`` next to MiniLM's WordPiece tokenizer. Tokens no command needs
(unused slots, non-ASCII pieces) are left out: ``token_rows`` maps a tokenizer id to its
row, or -1.

Embedding a sentence is then a lookup of each word's table rows (cached per word, since
commands reuse few words) and one mean: tens of microseconds, no torch. The WordPiece
tokenizer is re-implemented here (BERT uncased: normalise, split punctuation, greedy
longest match) from the vocabulary in ``tokenizer.json``, so the fast path needs only
numpy; a unit test checks it against the ``tokenizers`` library. Must never download
anything or read the environment; reads only the files it is given.
"""

from __future__ import annotations

import json
import unicodedata
from pathlib import Path

import numpy as np

# Commands reuse a small vocabulary; the cache is cleared when full so memory stays bounded
# whatever the input.
WORD_CACHE_SIZE = 50_000
MAX_WORD_CHARS = 100  # WordPiece's own limit: a longer word is [UNK]


class WordPiece:
    """BERT-uncased WordPiece, as configured in all-MiniLM-L6-v2's ``tokenizer.json``.

    ``ids(word)`` gives the token ids of one whitespace-free word; since BERT splits on
    whitespace first, the ids of a text are the ids of its words in order.
    """

    def __init__(self, vocab: dict[str, int], unk_token: str = "[UNK]", prefix: str = "##") -> None:
        self.vocab = vocab
        self.unk_id = vocab[unk_token]
        self.prefix = prefix

    @classmethod
    def from_tokenizer_json(cls, path: Path) -> WordPiece:
        """Read the WordPiece vocabulary of a Hugging Face ``tokenizer.json``.

        Raises:
            OSError: the file cannot be read.
            ValueError: it is not JSON or not a WordPiece tokenizer.
        """
        model = json.loads(path.read_text(encoding="utf-8")).get("model") or {}
        if model.get("type") != "WordPiece" or not isinstance(model.get("vocab"), dict):
            raise ValueError(f"{path.name}: not a WordPiece tokenizer")
        return cls(model["vocab"], model.get("unk_token", "[UNK]"), model.get("continuing_subword_prefix", "##"))

    def ids(self, word: str) -> list[int]:
        ids: list[int] = []
        for piece in _pre_tokenize(_normalize(word)):
            ids.extend(self._word_piece(piece))
        return ids

    def _word_piece(self, word: str) -> list[int]:
        if len(word) > MAX_WORD_CHARS:
            return [self.unk_id]
        ids = []
        start = 0
        while start < len(word):
            end = len(word)
            found = None
            while start < end:
                piece = word[start:end] if start == 0 else self.prefix + word[start:end]
                found = self.vocab.get(piece)
                if found is not None:
                    break
                end -= 1
            if found is None:
                return [self.unk_id]  # as BERT: one unknown piece makes the whole word [UNK]
            ids.append(found)
            start = end
        return ids


def _normalize(text: str) -> str:
    """BertNormalizer: drop control characters, space out CJK, lowercase, strip accents."""
    out = []
    for char in text:
        code = ord(char)
        if code == 0 or code == 0xFFFD or _is_control(char):
            continue
        if _is_cjk(code):
            out.append(f" {char} ")
        elif char.isspace():
            out.append(" ")
        else:
            out.append(char)
    lowered = "".join(out).lower()
    return "".join(c for c in unicodedata.normalize("NFD", lowered) if unicodedata.category(c) != "Mn")


def _pre_tokenize(text: str) -> list[str]:
    """BertPreTokenizer: split on whitespace, and every punctuation character alone."""
    pieces: list[str] = []
    current: list[str] = []
    for char in text:
        if char.isspace():
            if current:
                pieces.append("".join(current))
                current = []
        elif _is_punctuation(char):
            if current:
                pieces.append("".join(current))
                current = []
            pieces.append(char)
        else:
            current.append(char)
    if current:
        pieces.append("".join(current))
    return pieces


def _is_control(char: str) -> bool:
    if char in "\t\n\r":
        return False
    return unicodedata.category(char).startswith("C")


def _is_punctuation(char: str) -> bool:
    code = ord(char)
    if 33 <= code <= 47 or 58 <= code <= 64 or 91 <= code <= 96 or 123 <= code <= 126:
        return True
    return unicodedata.category(char).startswith("P")


def _is_cjk(code: int) -> bool:
    return (
        0x4E00 <= code <= 0x9FFF
        or 0x3400 <= code <= 0x4DBF
        or 0x20000 <= code <= 0x2A6DF
        or 0x2A700 <= code <= 0x2B73F
        or 0x2B740 <= code <= 0x2B81F
        or 0x2B820 <= code <= 0x2CEAF
        or 0xF900 <= code <= 0xFAFF
        or 0x2F800 <= code <= 0x2FA1F
    )


class StaticEmbedder:
    """Mean of static token vectors, L2-normalised, as model2vec's ``StaticModel.encode``."""

    def __init__(self, vectors: np.ndarray, token_rows: np.ndarray, tokenizer: WordPiece) -> None:
        # float16 as shipped (often memory-mapped, so loading reads nothing); the few rows
        # a text needs are converted to float32 before any arithmetic, because numpy's
        # float16 arithmetic is emulated and slow.
        self.vectors = vectors
        self.token_rows = np.asarray(token_rows, dtype=np.int64)
        self.tokenizer = tokenizer
        self.dim = int(vectors.shape[1])
        self._word_rows: dict[str, tuple[int, ...]] = {}

    @classmethod
    def from_files(cls, vectors: np.ndarray, token_rows: np.ndarray, tokenizer_path: Path) -> StaticEmbedder:
        """Build from a vector table, its id-to-row map and a ``tokenizer.json``.

        Raises:
            OSError, ValueError: the tokenizer file is missing or malformed.
        """
        return cls(vectors, token_rows, WordPiece.from_tokenizer_json(tokenizer_path))

    def _rows_of_word(self, word: str) -> tuple[int, ...]:
        rows = self._word_rows.get(word)
        if rows is None:
            # BERT pre-tokenises on whitespace first, so a word's pieces do not depend on
            # its neighbours: caching per word gives the same ids as encoding the text.
            limit = len(self.token_rows)
            ids = self.tokenizer.ids(word)
            rows = tuple(int(r) for r in (self.token_rows[i] for i in ids if i < limit) if r >= 0)
            if len(self._word_rows) >= WORD_CACHE_SIZE:
                self._word_rows.clear()
            self._word_rows[word] = rows
        return rows

    def rows(self, text: str) -> list[int]:
        """Table rows of a text's tokens (unknown and dropped tokens left out)."""
        rows: list[int] = []
        for word in text.split():
            rows.extend(self._rows_of_word(word))
        return rows

    def encode(self, texts: list[str]) -> np.ndarray:
        """One unit-length row per text (the normalised mean of its token vectors).

        A text with no known token gets a zero row. Few numpy calls on purpose: at this
        size their fixed cost, not the arithmetic, is the price.
        """
        out = np.zeros((len(texts), self.dim), dtype=np.float32)
        all_rows: list[int] = []
        starts: list[int] = []
        filled: list[int] = []
        for index, text in enumerate(texts):
            rows = self.rows(text)
            if rows:
                starts.append(len(all_rows))
                filled.append(index)
                all_rows.extend(rows)
        if not all_rows:
            return out
        # The sum has the direction of the mean; normalising makes them equal.
        sums = np.add.reduceat(self.vectors.take(all_rows, axis=0).astype(np.float32), starts, axis=0)
        norms = np.sqrt(np.einsum("ij,ij->i", sums, sums))[:, None]
        out[filled] = sums / np.where(norms > 0, norms, 1.0)
        return out
