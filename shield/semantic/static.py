"""The fast level-2 embedder: a static token-embedding table distilled offline from MiniLM.

``scripts/distill_semantic.py`` runs all-MiniLM-L6-v2 (through sentence-transformers)
once over every token of its vocabulary, model2vec-style (``[CLS] token [SEP]``, mean
pooled), reduces the vectors with PCA, weights them by SIF and stores them as float16 in
``model/vectors.npy`` next to MiniLM's WordPiece tokenizer. Tokens no command needs
(unused slots, non-ASCII pieces) are left out: ``token_rows`` maps a tokenizer id to its
row, or -1.

Embedding a sentence is then a lookup of each word's table rows (cached per word, since
commands reuse few words) and one mean: tens of microseconds, no torch. Must never
download anything or read the environment; reads only the files it is given.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from tokenizers import Tokenizer

# Commands reuse a small vocabulary; the cache is cleared when full so memory stays bounded
# whatever the input.
WORD_CACHE_SIZE = 50_000
MAX_WORD_CHARS = 100  # WordPiece's own limit: a longer word is [UNK]


class StaticEmbedder:
    """Mean of static token vectors, L2-normalised, as model2vec's ``StaticModel.encode``."""

    def __init__(self, vectors: np.ndarray, token_rows: np.ndarray, tokenizer: Tokenizer) -> None:
        # Shipped as float16 (half the size); held as float32 because numpy's float16
        # arithmetic is emulated and several times slower on the hot path.
        self.vectors = np.ascontiguousarray(vectors, dtype=np.float32)
        self.token_rows = np.asarray(token_rows, dtype=np.int64)
        self.tokenizer = tokenizer
        self.tokenizer.no_padding()
        self.tokenizer.no_truncation()
        self.dim = int(vectors.shape[1])
        self._word_rows: dict[str, tuple[int, ...]] = {}

    @classmethod
    def from_files(cls, vectors: np.ndarray, token_rows: np.ndarray, tokenizer_path: Path) -> StaticEmbedder:
        """Build from a vector table, its id-to-row map and a ``tokenizer.json``.

        Raises:
            Exception: whatever ``tokenizers`` raises for a missing or malformed file.
        """
        return cls(vectors, token_rows, Tokenizer.from_file(str(tokenizer_path)))

    def _rows_of_word(self, word: str) -> tuple[int, ...]:
        rows = self._word_rows.get(word)
        if rows is None:
            # BERT pre-tokenises on whitespace first, so a word's pieces do not depend on
            # its neighbours: caching per word gives the same ids as encoding the text.
            if len(word) > MAX_WORD_CHARS:
                rows = ()
            else:
                ids = self.tokenizer.encode(word, add_special_tokens=False).ids
                limit = len(self.token_rows)
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
        sums = np.add.reduceat(self.vectors.take(all_rows, axis=0), starts, axis=0)
        norms = np.sqrt(np.einsum("ij,ij->i", sums, sums))[:, None]
        out[filled] = sums / np.where(norms > 0, norms, 1.0)
        return out
