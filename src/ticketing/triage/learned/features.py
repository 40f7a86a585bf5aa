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
from collections import Counter
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
_WORD_CACHE_LIMIT = 20_000
_MAX_CHAR_WORD = 24  # longer "words" (hashes, paths, URLs) add only their first chars' n-grams


@dataclass(frozen=True)
class VectoriserParams:
    """Everything that decides which features a text gets (stored in the model's manifest)."""

    hash_bits: int = 20
    title_weight: float = 3.0
    max_title_chars: int = 300
    max_body_chars: int = 3000
    max_char_body_chars: int = 1000  # character n-grams from the start of the body only
    char_min: int = 2
    char_max: int = 5
    word_bigrams: bool = True
    title_words: bool = True  # title words also as their own features
    char_block_weight: float = 1.0  # relative to the word block, before the final L2 norm
    min_df: int = 2
    # The local rules' cue score per type as extra (log1p) features: evidence that carries
    # across projects where n-grams of one project's templates do not.
    rule_features: bool = False

    def to_json(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_json(cls, data: Any) -> VectoriserParams:
        """Validate a manifest's vectoriser section; raises ValueError when it is malformed."""
        if not isinstance(data, dict) or set(data) != set(cls.__dataclass_fields__):
            raise ValueError("vectoriser parameters do not match this version")
        ints = (
            "hash_bits",
            "max_title_chars",
            "max_body_chars",
            "max_char_body_chars",
            "char_min",
            "char_max",
            "min_df",
        )
        for name in ints:
            if type(data[name]) is not int or data[name] < 0:
                raise ValueError(f"vectoriser parameter {name} is not a non-negative integer")
        for name in ("title_weight", "char_block_weight"):
            value = data[name]
            if not isinstance(value, int | float) or isinstance(value, bool):
                raise ValueError(f"vectoriser parameter {name} is not a number")
            if not math.isfinite(value) or value < 0:
                raise ValueError(f"vectoriser parameter {name} is out of range")
        for name in ("word_bigrams", "title_words", "rule_features"):
            if type(data[name]) is not bool:
                raise ValueError(f"vectoriser parameter {name} is not a boolean")
        if not 8 <= data["hash_bits"] <= 24 or not 1 <= data["char_min"] <= data["char_max"] <= 8:
            raise ValueError("vectoriser parameters out of range")
        if data["title_weight"] < 1:
            raise ValueError("title_weight must be at least 1")
        return cls(**data)


_GOLDEN = np.uint64(0x9E3779B97F4A7C15)
_FNV = np.uint64(0x100000001B3)
_TOKEN_CACHE_LIMIT = 30_000


def _mix(h: npt.NDArray[np.uint64], salt: int, bits: int) -> npt.NDArray[np.uint64]:
    """Fibonacci hashing of 32-bit CRCs into `bits`-bit buckets, a different map per salt."""
    with np.errstate(over="ignore"):
        return ((h + np.uint64(salt << 32)) * _GOLDEN) >> np.uint64(64 - bits)


def _crc(text: str) -> int:
    return zlib.crc32(text.encode("utf-8", "surrogatepass"))


Raw = tuple[npt.NDArray[np.uint64], npt.NDArray[np.float64], npt.NDArray[np.int8]]


class _Hasher:
    """Unaggregated (bucket, weight, block) triples of one text; block 0 words, 1 characters.

    Caches each token's CRC and each word's character n-gram buckets (bounded), so the Python
    work per ticket is a dictionary lookup per token and per distinct word.
    """

    def __init__(self, params: VectoriserParams) -> None:
        self.params = params
        self._tokens: dict[str, int] = {}
        self._chars: dict[str, npt.NDArray[np.uint64]] = {}

    def _token_crcs(self, tokens: list[str]) -> npt.NDArray[np.uint64]:
        cache = self._tokens
        if len(cache) > _TOKEN_CACHE_LIMIT:
            cache.clear()
        out = []
        for token in tokens:
            h = cache.get(token)
            if h is None:
                h = cache[token] = _crc(token)
            out.append(h)
        return np.asarray(out, dtype=np.uint64)

    def _char_buckets(self, word: str) -> npt.NDArray[np.uint64]:
        cached = self._chars.get(word)
        if cached is not None:
            return cached
        padded = f" {word[:_MAX_CHAR_WORD]} "
        p = self.params
        grams = [
            _crc(padded[i : i + n])
            for n in range(p.char_min, min(p.char_max, len(padded)) + 1)
            for i in range(len(padded) - n + 1)
        ]
        out = _mix(np.asarray(grams, dtype=np.uint64), _SALT_CHAR, p.hash_bits)
        if len(self._chars) >= _WORD_CACHE_LIMIT:
            self._chars.clear()
        self._chars[word] = out
        return out

    def counts(self, title: str, description: str) -> Raw:
        """Every feature occurrence with its weight; the title's count title_weight each."""
        p, bits = self.params, self.params.hash_bits
        buckets: list[npt.NDArray[np.uint64]] = []
        weights: list[npt.NDArray[np.float64]] = []
        blocks: list[int] = []
        for text, weight, is_title in (
            (title[: p.max_title_chars].lower(), p.title_weight, True),
            (description[: p.max_body_chars].lower(), 1.0, False),
        ):
            crcs = self._token_crcs(_WORD.findall(text))
            parts = [_mix(crcs, _SALT_WORD, bits)]
            if is_title and p.title_words:
                parts.append(_mix(crcs, _SALT_TITLE_WORD, bits))
            if p.word_bigrams and crcs.shape[0] > 1:
                with np.errstate(over="ignore"):
                    pairs = (crcs[:-1] * _FNV) ^ crcs[1:]
                parts.append(_mix(pairs, _SALT_BIGRAM, bits))
            for part in parts:
                buckets.append(part)
                weights.append(np.full(part.shape[0], weight))
                blocks.append(part.shape[0])
            char_text = text if is_title else text[: p.max_char_body_chars]
            per_word = Counter(_WORD.findall(char_text))
            if per_word:
                grams = [self._char_buckets(word) for word in per_word]
                lengths = np.fromiter((g.shape[0] for g in grams), dtype=np.int64)
                counts = np.fromiter(per_word.values(), dtype=np.float64) * weight
                chars = np.concatenate(grams)
                buckets.append(chars)
                weights.append(np.repeat(counts, lengths))
                blocks.append(-chars.shape[0])  # negative: a character block
        if not buckets:
            empty = np.zeros(0, dtype=np.uint64)
            return empty, np.zeros(0), np.zeros(0, dtype=np.int8)
        block = np.concatenate([np.full(abs(n), 1 if n < 0 else 0, dtype=np.int8) for n in blocks])
        return np.concatenate(buckets), np.concatenate(weights), block


def n_rule_features(params: VectoriserParams) -> int:
    from ticketing.triage.rules import RULE_SCORE_TYPES

    return len(RULE_SCORE_TYPES) if params.rule_features else 0


def rule_matrix(
    params: VectoriserParams,
    texts: Sequence[tuple[str, str]],
    given: Sequence[Sequence[float]] | None = None,
) -> sp.csr_matrix:
    """log1p of the rules' type scores, one row per text (no columns when switched off)."""
    from ticketing.triage.rules import RULE_SCORE_TYPES, rule_type_scores

    if not params.rule_features:
        return sp.csr_matrix((len(texts), 0), dtype=np.float32)
    if given is None:
        given = [rule_type_scores(t, d) for t, d in texts]
    scores = np.asarray(given, dtype=np.float64).reshape(len(texts), len(RULE_SCORE_TYPES))
    return sp.csr_matrix(np.log1p(np.maximum(scores, 0.0)).astype(np.float32))


class Vectoriser:
    """Fitted: the kept buckets (sorted) and their idf. Produces L2-normalised CSR rows."""

    def __init__(self, params: VectoriserParams, columns: IntArray, idf: FloatArray) -> None:
        self.params = params
        self.columns = columns
        self.idf = idf
        self._hasher = _Hasher(params)
        # bucket -> column (or -1): a gather instead of a binary search per occurrence.
        self._lookup = np.full(1 << params.hash_bits, -1, dtype=np.int32)
        self._lookup[columns] = np.arange(columns.shape[0], dtype=np.int32)

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
        uniques = [np.unique(b) for b, _, _ in raw]
        if uniques:
            buckets, df = np.unique(np.concatenate(uniques), return_counts=True)
        else:
            buckets, df = np.zeros(0, dtype=np.uint64), np.zeros(0, dtype=np.int64)
        keep = df >= params.min_df
        columns = buckets[keep].astype(np.int64)
        n = len(texts)
        idf = (np.log((1.0 + n) / (1.0 + df[keep])) + 1.0).astype(np.float32)
        vectoriser = cls(params, columns, idf)
        vectoriser._hasher = hasher
        return vectoriser, vectoriser._matrix(raw)

    def transform(self, texts: Sequence[tuple[str, str]]) -> sp.csr_matrix:
        """Rows of L2-normalised TF-IDF (a row with no known feature is all zero)."""
        if len(texts) == 1 and self.n_features:
            title, body = texts[0]
            return self._row(self._hasher.counts(title, body))
        return self._matrix([self._hasher.counts(title, body) for title, body in texts])

    def _row(self, raw: Raw) -> sp.csr_matrix:
        """`_matrix` of one text in plain numpy: the same numbers (every sum is taken in the
        same order: term counts are exact, squares are summed along the sorted columns, as a
        CSR row sum does), without building and combining sparse matrices, whose fixed cost
        was most of the confidence computed for every AI answer."""
        buckets, w, blk = raw
        col = self._lookup[buckets.astype(np.int64)]
        known = col >= 0
        columns: list[npt.NDArray[np.int32]] = []
        values: list[npt.NDArray[np.float64]] = []
        for block, scale in ((0, 1.0), (1, math.sqrt(self.params.char_block_weight))):
            sel = known & (blk == block)
            if not sel.any():
                continue
            uniq, inverse = np.unique(col[sel], return_inverse=True)
            tf = np.bincount(inverse, weights=w[sel])
            data = (1.0 + np.log(np.maximum(tf, 1.0))) * self.idf[uniq]
            columns.append(uniq)
            values.append(_scaled_unit(data) * scale)
        if not columns:
            return sp.csr_matrix((1, self.n_features), dtype=np.float32)
        if len(columns) == 1:
            uniq, data = columns[0], values[0]
        else:
            # The two blocks' sum (a column in both is added, a + b as CSR addition does).
            uniq, inverse = np.unique(np.concatenate(columns), return_inverse=True)
            data = np.zeros(uniq.shape[0], dtype=np.float64)
            for part, idx in zip(values, np.split(inverse, [columns[0].shape[0]]), strict=True):
                data[idx] += part
        data = _scaled_unit(data).astype(np.float32)
        indptr = np.array([0, uniq.shape[0]], dtype=np.int32)
        return sp.csr_matrix(
            (data, uniq.astype(np.int32), indptr), shape=(1, self.n_features), copy=False
        )

    def _matrix(self, raw: Sequence[Raw]) -> sp.csr_matrix:
        n_rows, n_features = len(raw), self.n_features
        if n_rows == 0 or n_features == 0:
            return sp.csr_matrix((n_rows, n_features), dtype=np.float32)
        col = self._lookup[np.concatenate([r[0] for r in raw]).astype(np.int64)]
        w = np.concatenate([r[1] for r in raw])
        blk = np.concatenate([r[2] for r in raw])
        rows = np.repeat(np.arange(n_rows, dtype=np.int64), [r[0].shape[0] for r in raw])
        known = col >= 0
        result: sp.csr_matrix | None = None
        for block, scale in ((0, 1.0), (1, math.sqrt(self.params.char_block_weight))):
            sel = known & (blk == block)
            # Duplicates (row, column) are summed: the term frequencies.
            m = sp.csr_matrix(
                (w[sel], (rows[sel], col[sel])), shape=(n_rows, n_features), dtype=np.float64
            )
            m.sum_duplicates()
            m.data = (1.0 + np.log(np.maximum(m.data, 1.0))) * self.idf[m.indices]
            m = _normalise_rows(m) * scale  # each block on its own, then weighted
            result = m if result is None else result + m
        assert result is not None
        return _normalise_rows(result).astype(np.float32)


def _scaled_unit(data: npt.NDArray[np.float64]) -> npt.NDArray[np.float64]:
    """One row's values times 1 / their L2 norm, as `_normalise_rows` computes it (the
    squares summed in order; cumsum does not reorder, unlike sum)."""
    norm = math.sqrt(float(np.cumsum(data * data)[-1])) if data.shape[0] else 0.0
    return data * (1.0 / (norm or 1.0))


def _normalise_rows(m: sp.csr_matrix) -> sp.csr_matrix:
    norms = np.sqrt(np.asarray(m.multiply(m).sum(axis=1)).ravel())
    norms[norms == 0] = 1.0
    return sp.csr_matrix(sp.diags(1.0 / norms) @ m)
