"""How sure triage is of a ticket's type and priority, from the local model's probabilities.

A field's confidence is the probability the local model gives to the class the analysis chose.
For the local provider that is the model's own confidence (`Analysis.confidence`, for the fields
the model decided); for Gemini and OpenAI it is the local model's agreement with the AI (the
providers' own log-probabilities are not used: Gemini's structured output does not return them,
and many OpenAI-compatible servers do not either). A class the local model does not know gets
no figure.
"""

from __future__ import annotations

from ticketing.triage.base import Analysis
from ticketing.triage.learned import TrainedModel


def confidence_for(
    model: TrainedModel | None, title: str, description: str, analysis: Analysis
) -> dict[str, float] | None:
    """{"ticket_type": p, "priority": p}, each where the model knows the chosen class; None
    when there is nothing to say."""
    if analysis.confidence is not None:  # the local model's own answer
        return dict(analysis.confidence) or None
    if model is None:
        return None
    probabilities = model.class_probabilities(title, description)
    out: dict[str, float] = {}
    for field, chosen in (("ticket_type", analysis.ticket_type), ("priority", analysis.priority)):
        per_class = probabilities.get(field, {})
        if chosen.value in per_class:
            out[field] = round(float(per_class[chosen.value]), 4)
    return out or None


def needs_review(confidence: dict[str, float] | None, threshold: float) -> bool:
    """A ticket whose type or priority confidence is below `threshold` is flagged for review."""
    if not confidence:
        return False
    return any(p < threshold for p in confidence.values())
