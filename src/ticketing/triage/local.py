"""The offline triage analyzer: a learned model plus hand-written rules, no network.

It is the embedded default when no AI provider is configured and the fallback whenever the
AI fails, so it has to be fast (thousands of tickets per second) and still useful:

* ticket type (and priority, once the model has priority labels to learn from) comes from the
  learned model in `ticketing.triage.learned` (hashed TF-IDF n-grams + logistic regression,
  trained on labelled public issues; see docs/triage.md for its measured quality), with its
  probability as `Analysis.confidence`.
* required skills are matched against the skills people in the system actually have (plus the
  alias table in `ticketing.skills` and a few strong cues such as "password reset" ->
  authentication). Regexes are built only from OUR vocabulary (known skills and aliases,
  escaped), never from ticket text or model output.
* the rules still decide what the model does not: priority while the model has no priority
  classifier, the types it never learned (technical work on clear evidence, "other" for text
  too short to say anything), and everything when the model file is missing or corrupt.
  Their type and priority come from weighted phrase cues; the title counts more than the body.
* helpful notes only ever contain our own vocabulary (cue names, known skills), so ticket text
  cannot inject content into what the moderator reads.

The rules themselves (cue tables, skills, notes) live in `ticketing.triage.rules`.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING

from ticketing.triage import rules
from ticketing.triage.base import Analysis
from ticketing.triage.rules import DEFAULT_SKILL_VOCABULARY, RULE_SCORE_TYPES, RULES_MODEL

__all__ = [
    "DEFAULT_SKILL_VOCABULARY",
    "RULES_MODEL",
    "RULE_SCORE_TYPES",
    "LocalAnalyzer",
    "ModelSource",
    "learned_model_name",
]

if TYPE_CHECKING:
    from ticketing.triage.learned import Prediction, TrainedModel

ModelSource = Callable[[], "TrainedModel"]


def learned_model_name(model: TrainedModel) -> str:
    """What tickets record as `analysis_model` for a learned model: its content hash."""
    return f"local-learned-{model.version}"


class LocalAnalyzer:
    """Offline triage: the learned model for type (and priority when it has learned it), rules
    for skills and for whatever the model does not cover. Deterministic; safe from any thread.

    `model_source` returns the model to use (default: the shipped one, loaded once per
    process); it is asked on every analysis, so a source that returns a newly activated model
    takes effect at once. If it raises ModelLoadError the rules decide everything and
    `model_error` says why (the triage service puts it into `analysis_error`).
    `use_model=False` gives the pure rules (tests, comparisons).
    """

    name = "local"
    # No network and no retries: a prediction takes well under a millisecond.
    max_total_seconds: float = 1.0

    def __init__(self, model_source: ModelSource | None = None, *, use_model: bool = True) -> None:
        if model_source is None and use_model:
            from ticketing.triage.learned import default_model

            model_source = default_model
        self._source = model_source if use_model else None
        self.model: str | None = rules.RULES_MODEL
        self.model_error: str | None = None
        self._resolve()  # so `model` and `model_error` are right before the first analysis

    def _resolve(self) -> TrainedModel | None:
        if self._source is None:
            return None
        from ticketing.errors import ModelLoadError

        try:
            model = self._source()
        except ModelLoadError as exc:
            self.model, self.model_error = (
                rules.RULES_MODEL,
                f"local model unavailable ({exc}); rules used",
            )
            return None
        self.model, self.model_error = learned_model_name(model), None
        return model

    def analyze_sync(self, title: str, description: str, known_skills: Sequence[str]) -> Analysis:
        """Analyse one ticket synchronously (well under a millisecond)."""
        return self.analyze_many([(title, description)], known_skills)[0]

    def analyze_many(
        self, items: Sequence[tuple[str, str]], known_skills: Sequence[str]
    ) -> list[Analysis]:
        """Analyse many tickets at once: the model predicts them in one batch."""
        model = self._resolve()
        matcher = rules.skill_matcher(known_skills)
        signals = [rules.signals_of(title, description, matcher) for title, description in items]
        predictions: Sequence[Prediction | None] = [None] * len(items)
        if model is not None:
            # The rules' type scores are features of the model: computed once, used twice.
            scores = [rules.type_scores(s) for s in signals]
            predictions = model.predict_many(items, rule_scores=scores)
        classes = set(model.type_classes) if model is not None else set()
        return [
            rules.analysis_from(s, prediction, classes)
            for s, prediction in zip(signals, predictions, strict=True)
        ]

    async def analyze(self, title: str, description: str, known_skills: Sequence[str]) -> Analysis:
        """The TriageProvider entry point: fast enough to run inline."""
        return self.analyze_sync(title, description, known_skills)

    async def aclose(self) -> None:
        """Nothing to close: no connections."""
