"""The fast level-2 embedder: a static token-embedding table distilled offline from MiniLM.

``scripts/distill_semantic.py`` runs all-MiniLM-L6-v2 (through sentence-transformers)
once over every token of its vocabulary, model2vec-style (``[CLS] token [SEP]``, mean
pooled), reduces the vectors with PCA, weights them by SIF and stores them as float16 in
``model/static.npz`` together with MiniLM's WordPiece tokenizer. Tokens no command needs
(unused slots, non-ASCII pieces) are left out: ``token_rows`` maps a tokenizer id to its
row, or -1.
Embedding a sentence at run time is then a tokenizer call and the mean of a few table
rows: tens of microseconds, no torch, no model2vec import.

Must never download anything or read the environment; reads only the files it is given.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from tokenizers import Tokenizer


class StaticEmbedder:
    """Mean of static token vectors, L2-normalised, as model2vec's ``StaticModel.encode``."""

    def __init__(self, vectors: np.ndarray, token_rows: np.ndarray, tokenizer: Tokenizer) -> None:
        # float32 for the arithmetic: float16 sums lose precision and numpy's float16
        # matmul is slow; the table stays small enough (vocab x dims) either way.
        self.vectors = np.ascontiguousarray(vectors, dtype=np.float32)
        self.tokenizer = tokenizer
        self.tokenizer.no_padding()
        self.tokenizer.no_truncation()
        self.dim = int(self.vectors.shape[1])
        self.token_rows = np.asarray(token_rows, dtype=np.int64)

    @classmethod
    def from_files(cls, vectors: np.ndarray, token_rows: np.ndarray, tokenizer_path: Path) -> "StaticEmbedder":
        """Build from a vector table, its id-to-row map and a ``tokenizer.json``.

        Raises:
            Exception: whatever ``tokenizers`` raises for a missing or malformed file.
        """
        return cls(vectors, token_rows, Tokenizer.from_file(str(tokenizer_path)))

    def rows(self, texts: list[str]) -> list[np.ndarray]:
        """Table rows of each text's tokens (unknown and dropped tokens left out)."""
        encodings = self.tokenizer.encode_batch(texts, add_special_tokens=False)
        limit = len(self.token_rows)
        result = []
        for encoding in encodings:
            ids = np.asarray(encoding.ids, dtype=np.int64)
            rows = self.token_rows[ids[ids < limit]]
            result.append(rows[rows >= 0])
        return result

    def encode(self, texts: list[str]) -> np.ndarray:
        """One unit-length row per text; a text with no known token gets a zero row."""
        out = np.zeros((len(texts), self.dim), dtype=np.float32)
        for index, rows in enumerate(self.rows(texts)):
            if rows.size:
                out[index] = self.vectors[rows].mean(axis=0)
        norms = np.linalg.norm(out, axis=1, keepdims=True)
        np.divide(out, norms, out=out, where=norms > 0)
        return out
