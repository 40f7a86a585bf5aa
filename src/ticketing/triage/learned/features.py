"""Text -> sparse TF-IDF vectors: hashed word and character n-grams of title and body.

Hashing (CRC-32 of the n-gram, a different salt per kind) instead of a vocabulary of strings:
a model then carries no text of its training data, only bucket numbers, idf weights and
coefficients, and a loaded model holds a few arrays rather than a dict of a million strings.
Only the buckets seen at least `min_df` times in training become columns; anything else is
dropped, like an out-of-vocabulary term.

The same code vectorises at training and at prediction time (no second implementation to
drift), in plain Python + numpy: a word's character n-gram buckets are cached per process, so
after the first few hundred tickets a new ticket costs little more than splitting its words.
"""

from __future__ import annotations

import math
import re
import zlib
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np
import numpy.typing as npt
import scipy.sparse as sp

FloatArray = npt.NDArray[np.float32]
IntArray = npt.NDArray[np.int64]

# Salts keep kinds apart: the word "bug" and the character trigram "bug" are different features.
_SALT_WORD = 0x01
_SALT_BIGRAM = 0x02
_SALT_TITLE_WORD = 0x03
_SALT_CHAR = 0x04

_WORD = re.compile(r"\w\w+")
_WORD_CACHE_LIMIT = 50_000
_MAX_CHAR_WORD = 24  # longer "words" (hashes, paths, URLs) add only their first chars' n-grams


@dataclass(frozen=True)
class VectoriserParams:
    """Everything that decides which features a text gets (stored in the model's manifest)."""

    hash_bits: int = 22
    title_weight: float = 3.0
    max_title_chars: int = 300
    max_body_chars: int = 3000
    char_min: int = 2
    char_max: int = 5
    word_bigrams: bool = True
    title_words: bool = True  # title words also as their own features
    char_block_weight: float = 1.0  # relative to the word block, before the final L2 norm
    min_df: int = 2

    def to_json(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_json(cls, data: Any) -> VectoriserParams:
        """Validate a manifest's vectoriser section; raises ValueError when it is malformed."""
        if not isinstance(data, dict) or set(data) != set(cls.__dataclass_fields__):
            raise ValueError("vectoriser parameters do not match this version")
        ints = ("hash_bits", "max_title_chars", "max_body_chars", "char_min", "char_max", "min_df")
        for name in ints:
            if type(data[name]) is not int or data[name] < 0:
                raise ValueError(f"vectoriser parameter {name} is not a non-negative integer")
        for name in ("title_weight", "char_block_weight"):
            value = data[name]
            if not isinstance(value, int | float) or isinstance(value, bool):
                raise ValueError(f"vectoriser parameter {name} is not a number")
            if not math.isfinite(value) or value < 0:
                raise ValueError(f"vectoriser parameter {name} is out of range")
        for name in ("word_bigrams", "title_words"):
            if type(data[name]) is not bool:
                raise ValueError(f"vectoriser parameter {name} is not a boolean")
        if not 8 <= data["hash_bits"] <= 30 or not 1 <= data["char_min"] <= data["char_max"] <= 8:
            raise ValueError("vectoriser parameters out of range")
        if data["title_weight"] < 1:
            raise ValueError("title_weight must be at least 1")
        return cls(**data)


def _h(text: str, salt: int, mask: int) -> int:
    return zlib.crc32(text.encode("utf-8", "surrogatepass"), salt) & mask


class _Hasher:
    """Raw (uncompacted) bucket counts of one text; caches each word's char n-gram buckets."""

    def __init__(self, params: VectoriserParams) -> None:
        self.params = params
        self.mask = (1 << params.hash_bits) - 1
        self._char_cache: dict[str, list[int]] = {}

    def _char_buckets(self, word: str) -> list[int]:
        cached = self._char_cache.get(word)
        if cached is not None:
            return cached
        padded = f" {word[:_MAX_CHAR_WORD]} "
        p, mask = self.params, self.mask
        out: list[int] = []
        for n in range(p.char_min, p.char_max + 1):
            for i in range(len(padded) - n + 1):
                out.append(_h(padded[i : i + n], _SALT_CHAR, mask))
            if n >= len(padded):
                break
        if len(self._char_cache) >= _WORD_CACHE_LIMIT:
            self._char_cache.clear()
        self._char_cache[word] = out
        return out

    def counts(self, title: str, description: str) -> tuple[dict[int, float], dict[int, float]]:
        """(word block, char block) bucket -> weighted count; the title counts title_weight."""
        p, mask = self.params, self.mask
        words: dict[int, float] = {}
        chars: dict[int, float] = {}
        for text, weight, is_title in (
            (title[: p.max_title_chars].lower(), p.title_weight, True),
            (description[: p.max_body_chars].lower(), 1.0, False),
        ):
            tokens = _WORD.findall(text)
            for token in tokens:
                b = _h(token, _SALT_WORD, mask)
                words[b] = words.get(b, 0.0) + weight
                if is_title and p.title_words:
                    b = _h(token, _SALT_TITLE_WORD, mask)
                    words[b] = words.get(b, 0.0) + 1.0
            if p.word_bigrams:
                for i in range(len(tokens) - 1):
                    b = _h(f"{tokens[i]} {tokens[i + 1]}", _SALT_BIGRAM, mask)
                    words[b] = words.get(b, 0.0) + weight
            per_word: dict[str, int] = {}
            for word in text.split():
                per_word[word] = per_word.get(word, 0) + 1
            for word, n in per_word.items():
                add = n * weight
                for b in self._char_buckets(word):
                    chars[b] = chars.get(b, 0.0) + add
        return words, chars


class Vectoriser:
    """Fitted: the kept buckets (sorted) and their idf. Produces L2-normalised CSR rows."""

    def __init__(self, params: VectoriserParams, columns: IntArray, idf: FloatArray) -> None:
        self.params = params
        self.columns = columns
        self.idf = idf
        self._hasher = _Hasher(params)

    @property
    def n_features(self) -> int:
        return int(self.columns.shape[0])

    @classmethod
    def fit(
        cls, params: VectoriserParams, texts: Sequence[tuple[str, str]]
    ) -> tuple[Vectoriser, sp.csr_matrix]:
        """Choose the columns and idf from `texts`; returns the vectoriser and their matrix."""
        hasher = _Hasher(params)
        raw = [hasher.counts(title, body) for title, body in texts]
        df: dict[int, int] = {}
        for words, chars in raw:
            for block in (words, chars):
                for b in block:
                    df[b] = df.get(b, 0) + 1
        kept = sorted(b for b, n in df.items() if n >= params.min_df)
        columns = np.asarray(kept, dtype=np.int64)
        counts = np.asarray([df[b] for b in kept], dtype=np.float64)
        n = len(texts)
        idf = (np.log((1.0 + n) / (1.0 + counts)) + 1.0).astype(np.float32)
        vectoriser = cls(params, columns, idf)
        vectoriser._hasher = hasher
        return vectoriser, vectoriser._matrix(raw)

    def transform(self, texts: Sequence[tuple[str, str]]) -> sp.csr_matrix:
        """Rows of L2-normalised TF-IDF (a row with no known feature is all zero)."""
        return self._matrix([self._hasher.counts(title, body) for title, body in texts])

    def _matrix(self, raw: Sequence[tuple[dict[int, float], dict[int, float]]]) -> sp.csr_matrix:
        rows: list[int] = []
        buckets: list[int] = []
        values: list[float] = []
        blocks: list[int] = []
        for i, (words, chars) in enumerate(raw):
            for block_id, block in ((0, words), (1, chars)):
                n = len(block)
                rows.extend([i] * n)
                buckets.extend(block.keys())
                values.extend(block.values())
                blocks.extend([block_id] * n)
        n_rows = len(raw)
        if not buckets or self.n_features == 0:
            return sp.csr_matrix((n_rows, self.n_features), dtype=np.float32)
        b = np.asarray(buckets, dtype=np.int64)
        pos = np.searchsorted(self.columns, b)
        pos_clipped = np.minimum(pos, self.n_features - 1)
        known = self.columns[pos_clipped] == b
        r = np.asarray(rows, dtype=np.int64)[known]
        c = pos_clipped[known]
        blk = np.asarray(blocks, dtype=np.int64)[known]
        tf = np.asarray(values, dtype=np.float64)[known]
        v = (1.0 + np.log(tf)) * self.idf[c]  # sublinear tf times idf
        # Each block normalised on its own, then weighted, then the whole row normalised.
        key = r * 2 + blk
        norms = np.sqrt(np.bincount(key, weights=v * v, minlength=n_rows * 2))
        v = v / np.where(norms[key] > 0, norms[key], 1.0)
        v = v * np.where(blk == 1, math.sqrt(self.params.char_block_weight), 1.0)
        row_norm = np.sqrt(np.bincount(r, weights=v * v, minlength=n_rows))
        v = v / np.where(row_norm[r] > 0, row_norm[r], 1.0)
        matrix = sp.csr_matrix(
            (v.astype(np.float32), (r, c)), shape=(n_rows, self.n_features), dtype=np.float32
        )
        matrix.sum_duplicates()
        return matrix
