"""Layer 3: alt-profanity-check's English model (TF-IDF + calibrated linear SVMs).

The wheel ships the model; scikit-learn's per-call overhead (about 2.5 ms for
one string) is most of its cost, so the model's numbers are read once and a
message is scored with a dictionary lookup per word and one small matrix
product: the same probability as `profanity_check.predict_prob`, in tens of
microseconds, cheap enough to run on the event loop. The model cannot see
Chinese (every Chinese string scores like the empty string), so text without
Latin letters is not scored at all.
"""

from __future__ import annotations

import importlib.util
import math
import operator
import re
from collections import Counter
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from bot.errors import HearthError

MODEL_PACKAGE = "profanity_check"
TOKEN = re.compile(r"(?u)\b\w\w+\b")  # the vectorizer's own token_pattern
FEW_COLUMNS = 24  # known words up to which `score` is faster in plain Python than in numpy


class ClassifierUnavailableError(HearthError):
    """alt-profanity-check's model files could not be found or read."""


@dataclass(frozen=True, slots=True)
class ProfanityModel:
    """The numbers of alt-profanity-check's model, enough to score a text exactly as it does."""

    vocabulary: dict[str, int]
    stop_words: frozenset[str]
    idf: npt.NDArray[np.float64]
    weights: npt.NDArray[np.float64]  # (vocabulary, folds)
    intercepts: npt.NDArray[np.float64]  # (folds,)
    sigmoid_a: npt.NDArray[np.float64]
    sigmoid_b: npt.NDArray[np.float64]
    # The same numbers as Python floats, for `_score_few` (set once, by __post_init__):
    _calibration: tuple[tuple[float, float, float], ...] = ()  # (intercept, a, b) per fold
    _lists: tuple[list[float], list[list[float]]] = ([], [])  # idf, weights (about 4 MB)

    def __post_init__(self) -> None:
        folds = zip(self.intercepts.tolist(), self.sigmoid_a.tolist(), self.sigmoid_b.tolist(), strict=True)
        object.__setattr__(self, "_calibration", tuple(folds))  # frozen: set here only
        object.__setattr__(self, "_lists", (self.idf.tolist(), self.weights.tolist()))

    def score(self, text: str) -> float:
        """Probability that `text` is offensive English, 0..1."""
        counts = Counter(TOKEN.findall(text.lower()))  # counted in C, stop words left out after
        columns = [(self.vocabulary[t], n) for t, n in counts.items()
                   if t in self.vocabulary and t not in self.stop_words]
        if len(columns) <= FEW_COLUMNS:
            return self._score_few(columns)
        index = np.fromiter((c for c, _ in columns), dtype=np.intp, count=len(columns))
        tf = np.fromiter((n for _, n in columns), dtype=np.float64, count=len(columns))
        tfidf = tf * self.idf[index]
        tfidf /= np.sqrt(tfidf @ tfidf)
        decisions = tfidf @ self.weights[index] + self.intercepts
        calibrated = 1.0 / (1.0 + np.exp(self.sigmoid_a * decisions + self.sigmoid_b))
        return float(calibrated.mean())

    def _score_few(self, columns: list[tuple[int, int]]) -> float:
        """`score` in plain Python, for a text of few known words: numpy's cost per call
        (about 1 µs, 15 calls) is more than the arithmetic."""
        idf, weights = self._lists
        tfidf = [n * idf[c] for c, n in columns]
        norm = math.sqrt(sum(map(operator.mul, tfidf, tfidf))) or 1.0
        rows = [weights[c] for c, _ in columns]
        by_fold = zip(*rows, strict=True) if rows else ((),) * len(self._calibration)
        total = 0.0
        for (intercept, a, b), fold_weights in zip(self._calibration, by_fold, strict=True):
            decision = intercept + sum(map(operator.mul, tfidf, fold_weights)) / norm
            total += 1.0 / (1.0 + math.exp(a * decision + b))
        return total / len(self._calibration)


def _model_dir() -> Path:
    spec = importlib.util.find_spec(MODEL_PACKAGE)  # found without importing: the import loads it
    if spec is None or not spec.submodule_search_locations:
        raise ClassifierUnavailableError("alt-profanity-check is not installed")
    return Path(next(iter(spec.submodule_search_locations))) / "data"


@lru_cache(maxsize=1)
def load_model() -> ProfanityModel:
    """Read the shipped model, once per process (about a second, mostly importing
    scikit-learn): make the first call in a worker thread."""
    import joblib

    data = _model_dir()
    try:
        vectorizer: Any = joblib.load(data / "vectorizer.joblib")
        model: Any = joblib.load(data / "model.joblib")
    except (OSError, ValueError, ImportError) as exc:
        raise ClassifierUnavailableError(f"cannot load alt-profanity-check's model: {exc}") from exc
    folds = model.calibrated_classifiers_
    return ProfanityModel(
        vocabulary={str(k): int(v) for k, v in vectorizer.vocabulary_.items()},
        stop_words=frozenset(vectorizer.get_stop_words() or ()),
        idf=np.asarray(vectorizer.idf_, dtype=np.float64),
        weights=np.column_stack([f.estimator.coef_[0] for f in folds]).astype(np.float64),
        intercepts=np.array([f.estimator.intercept_[0] for f in folds], dtype=np.float64),
        sigmoid_a=np.array([f.calibrators[0].a_ for f in folds], dtype=np.float64),
        sigmoid_b=np.array([f.calibrators[0].b_ for f in folds], dtype=np.float64),
    )
