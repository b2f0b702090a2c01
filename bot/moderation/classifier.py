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

    def score(self, text: str) -> float:
        """Probability that `text` is offensive English, 0..1."""
        counts = Counter(t for t in TOKEN.findall(text.lower()) if t not in self.stop_words)
        columns = [(self.vocabulary[t], n) for t, n in counts.items() if t in self.vocabulary]
        decisions = self.intercepts
        if columns:
            index = np.fromiter((c for c, _ in columns), dtype=np.intp, count=len(columns))
            tf = np.fromiter((n for _, n in columns), dtype=np.float64, count=len(columns))
            tfidf = tf * self.idf[index]
            tfidf /= np.sqrt(tfidf @ tfidf)
            decisions = tfidf @ self.weights[index] + self.intercepts
        calibrated = 1.0 / (1.0 + np.exp(self.sigmoid_a * decisions + self.sigmoid_b))
        return float(calibrated.mean())


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
