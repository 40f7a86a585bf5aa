"""Triage that learns: train the local model from the organisation's labels, gate and keep
every version, and measure how often staff correct the analysis.

Labels are the latest staff correction of a ticket's type/priority, and the final type/priority
of resolved and closed tickets. A held-out part of them (stratified by type, fixed seed) scores
the new model and the active one alike; the new one becomes active only if it scores at least
as well. Every version is kept with its scores and can be re-activated.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import random
from collections import defaultdict
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Literal

from sqlalchemy.ext.asyncio import AsyncSession

from ticketing.config import Settings
from ticketing.db import Database, new_id, utcnow
from ticketing.errors import Conflict, InvalidField, ModelLoadError, NotFound
from ticketing.jobs import queue
from ticketing.jobs.queue import JobKind
from ticketing.triage import repository as repo
from ticketing.triage.learned import (
    Example,
    TrainedModel,
    default_model,
    evaluate,
    read_csv,
    train,
)
from ticketing.triage.models import TriageModelVersion
from ticketing.triage.registry import load_version_bytes
from ticketing.vocabulary import Priority, TicketType

log = logging.getLogger(__name__)

# POST /admin/triage/train: one at a time (a second request while one is pending queues none).
TRIAGE_TRAIN = JobKind("triage_train", max_attempts=2)
TRAIN_JOB_KEY = "triage:train"
HOLDOUT_FRACTION = 0.2
BASE_WEIGHT = 0.3  # the shipped examples count less than the organisation's own labels
MIN_LABELS = 10  # fewer and there is nothing to hold out: training refuses
MAX_LABELS = 20_000  # the newest labels, bounding the work of one training
SEED = 0

Activation = Literal["if_better", "always", "never"]
Trainer = Callable[[Sequence[Example], int], TrainedModel]


def retrain_kind(settings: Settings) -> JobKind:
    """The recurring retraining, every TRIAGE_RETRAIN_HOURS."""
    return JobKind(
        "triage_retrain", max_attempts=2, every_seconds=settings.triage_retrain_hours * 3600
    )


class NotEnoughLabels(Exception):
    """Too few labels to hold some out and score a model on them."""


@dataclass
class TrainReport:
    version_id: str
    labels: int  # examples trained on (organisation + shipped)
    org_labels: int
    heldout: int
    scores: dict[str, Any]
    active_scores: dict[str, Any] | None
    compared_with: str  # the version scored alongside ("default" for the shipped model)
    activated: bool
    reason: str
    extra: dict[str, Any] = field(default_factory=dict)


def _default_trainer(examples: Sequence[Example], seed: int) -> TrainedModel:
    return train(examples, seed=seed)


def split_labels(
    examples: Sequence[Example], *, fraction: float = HOLDOUT_FRACTION, seed: int = SEED
) -> tuple[list[Example], list[Example]]:
    """(train, held out): stratified by type, deterministic for a seed; every class with two or
    more examples gives at least one to each side."""
    by_class: dict[str, list[Example]] = defaultdict(list)
    for e in examples:
        by_class[e.ticket_type.value].append(e)
    rng = random.Random(seed)
    train_part: list[Example] = []
    held: list[Example] = []
    for cls in sorted(by_class):
        items = list(by_class[cls])
        rng.shuffle(items)
        if len(items) < 2:
            train_part += items
            continue
        n = min(len(items) - 1, max(1, round(len(items) * fraction)))
        held += items[:n]
        train_part += items[n:]
    return train_part, held


def headline(scores: dict[str, Any] | None) -> float:
    """One number to compare models: mean macro-F1 over the fields scored."""
    if not scores:
        return 0.0
    values = [
        float(scores[f]["macro_f1"])
        for f in ("ticket_type", "priority")
        if isinstance(scores.get(f), dict) and "macro_f1" in scores[f]
    ]
    return sum(values) / len(values) if values else 0.0


def _summary(result: dict[str, Any]) -> dict[str, Any]:
    """Scores worth storing: n, and per field accuracy and macro-F1 (per class too)."""
    out: dict[str, Any] = {"n": result.get("n", 0)}
    for f in ("ticket_type", "priority"):
        m = result.get(f)
        if isinstance(m, dict):
            out[f] = {k: m[k] for k in ("n", "accuracy", "macro_f1", "per_class") if k in m}
    out["headline"] = round(headline(out), 4)
    return out


def _example(label: repo.LabelledTicket) -> Example | None:
    try:
        ticket_type = TicketType(label.ticket_type)
        priority = Priority(label.priority) if label.priority else None
    except ValueError:
        return None
    return Example(label.title, label.description, ticket_type, priority, 1.0)


def base_examples(settings: Settings) -> list[Example]:
    """The shipped labelled examples (TRIAGE_BASE_CSV), weighted less; none if unset."""
    if not settings.triage_base_csv:
        return []
    path = Path(settings.triage_base_csv)
    try:
        return read_csv(path, weight=BASE_WEIGHT)
    except (OSError, ValueError, UnicodeDecodeError) as exc:
        log.warning("TRIAGE_BASE_CSV %s not used: %s", path, exc)
        return []


async def _active_model(session: AsyncSession) -> tuple[str, TrainedModel | None]:
    active_id = await repo.active_version_id(session)
    if active_id is not None:
        row = await repo.get_version(session, active_id)
        if row is not None:
            data, manifest, sha256 = row.data, dict(row.manifest), row.sha256
            try:
                model = await asyncio.to_thread(load_version_bytes, data, manifest, sha256)
            except ModelLoadError as exc:
                log.error("active triage model %s does not load (%s)", active_id, exc)
            else:
                return active_id, model
    try:
        return "default", await asyncio.to_thread(default_model)
    except ModelLoadError as exc:
        log.error("the shipped triage model does not load (%s): nothing to compare with", exc)
        return "none", None


async def train_from_db(
    db: Database,
    *,
    base: Sequence[Example] = (),
    activation: Activation = "if_better",
    trainer: Trainer = _default_trainer,
    seed: int = SEED,
    before_commit: Callable[[AsyncSession], Awaitable[None]] | None = None,
) -> TrainReport:
    """Train a version from the database's labels (plus `base`), score it and the active model
    on the same held-out labels, store it, and activate it as `activation` says."""
    async with repo.reading(db) as session:
        labels = await repo.labelled_tickets(session, limit=MAX_LABELS)
        compared_with, active = await _active_model(session)
    org = [e for e in (_example(label) for label in labels) if e is not None]
    if len(org) < MIN_LABELS:
        raise NotEnoughLabels(
            f"{len(org)} labelled tickets; at least {MIN_LABELS} are needed to train"
        )
    train_part, held = split_labels(org, seed=seed)
    examples = [*train_part, *base]

    def fit_and_score() -> tuple[TrainedModel, dict[str, Any], dict[str, Any]]:
        model = trainer(examples, seed)
        compared = _summary(evaluate(active, held)) if active is not None else {"headline": 0.0}
        return model, _summary(evaluate(model, held)), compared

    model, scores, active_scores = await asyncio.to_thread(fit_and_score)
    new_score, old_score = scores["headline"], active_scores["headline"]
    better = new_score >= old_score
    activate = activation == "always" or (activation == "if_better" and better)
    if activation == "never":
        reason = "not activated (as asked)"
    elif activate and better:
        reason = f"activated: scores {new_score:.3f} >= {old_score:.3f} of {compared_with}"
    elif activate:
        reason = f"activated as asked, though it scores {new_score:.3f} < {old_score:.3f}"
    else:
        reason = f"kept {compared_with}: it scores {old_score:.3f} > {new_score:.3f}"
    data, manifest = await asyncio.to_thread(model.to_bytes)
    stored_scores = {
        **scores,
        "heldout": len(held),
        "org_labels": len(org),
        "base_labels": len(base),
        "compared_with": compared_with,
        "compared_scores": active_scores,
        "decision": reason,
    }
    version = TriageModelVersion(
        id=new_id(),
        created_at=utcnow(),
        labels=len(examples),
        scores=stored_scores,
        manifest=manifest,
        data=data,
        sha256=hashlib.sha256(data).hexdigest(),
        active=False,
    )
    async with db.transaction() as session:
        repo.add_version(session, version)
        await session.flush()
        if activate:
            await repo.activate(session, version.id)
        if before_commit is not None:
            await before_commit(session)
    log.info(
        "triage model trained",
        extra={"version": version.id, "labels": len(examples), "activated": activate},
    )
    return TrainReport(
        version_id=version.id,
        labels=len(examples),
        org_labels=len(org),
        heldout=len(held),
        scores=scores,
        active_scores=active_scores,
        compared_with=compared_with,
        activated=activate,
        reason=reason,
    )


async def retrain_due(session: AsyncSession, min_new_labels: int) -> tuple[bool, int]:
    """Whether enough labels arrived since the active version was trained (and how many)."""
    active = await repo.active_version(session)
    since: datetime | None = active.created_at if active is not None else None
    new = await repo.count_new_labels(session, since)
    return new >= min_new_labels, new


# --- what the admin endpoints do ---


async def queue_training(session: AsyncSession) -> int:
    """Queue a training job unless one is pending; how many were queued (0 or 1)."""
    if await queue.has_pending(session, TRAIN_JOB_KEY):
        return 0
    queue.enqueue(session, TRIAGE_TRAIN, {"activation": "if_better"}, key=TRAIN_JOB_KEY)
    return 1


async def list_versions(session: AsyncSession) -> list[repo.VersionSummary]:
    return await repo.list_versions(session)


async def activate_version(session: AsyncSession, version_id: str) -> repo.VersionSummary:
    """Re-activate a stored version (404 unknown; 409 if its stored bytes do not load)."""
    row = await repo.get_version(session, version_id)
    if row is None:
        raise NotFound("No such model version")
    data, manifest, sha256 = row.data, dict(row.manifest), row.sha256
    try:
        await asyncio.to_thread(load_version_bytes, data, manifest, sha256)
    except ModelLoadError as exc:
        raise Conflict(f"This model version does not load: {exc}") from exc
    await repo.activate(session, version_id)
    await session.flush()
    for version in await repo.list_versions(session):
        if version.id == version_id:
            return version
    raise NotFound("No such model version")  # pragma: no cover - deleted concurrently


@dataclass(frozen=True)
class ProviderQuality:
    provider: str
    analysed: int
    corrected: dict[str, dict[str, float]]  # field -> {"count", "rate"}
    confusion: dict[str, dict[str, int]]  # analysed type -> final type -> tickets


@dataclass(frozen=True)
class Quality:
    start: datetime | None
    end: datetime | None
    providers: list[ProviderQuality]
    confusion: dict[str, dict[str, int]]  # all providers together
    active_model: dict[str, Any]


def _utc(value: datetime | None) -> datetime | None:
    """A time without an offset is read as UTC."""
    if value is None or value.tzinfo is not None:
        return value
    return value.replace(tzinfo=UTC)


async def quality(session: AsyncSession, start: datetime | None, end: datetime | None) -> Quality:
    """Per provider: tickets analysed in [start, end), how often staff corrected each field,
    and the confusion of type (analysed vs final); plus the active model's scores."""
    start, end = _utc(start), _utc(end)
    if start is not None and end is not None and start > end:
        raise InvalidField("from must not be after to")
    analysed = await repo.analysed_per_provider(session, start, end)
    corrected = await repo.corrected_per_provider(session, start, end)
    confusion_rows = await repo.type_confusion(session, start, end)
    overall: dict[str, dict[str, int]] = defaultdict(lambda: defaultdict(int))
    per: dict[str, dict[str, dict[str, int]]] = defaultdict(
        lambda: defaultdict(lambda: defaultdict(int))
    )
    for provider, said, final, n in confusion_rows:
        per[provider][said][final] += n
        overall[said][final] += n
    providers = []
    for provider in sorted(analysed):
        total = analysed[provider]
        fields = {}
        for f in repo.CORRECTED_FIELDS:
            count = corrected.get((provider, f), 0)
            fields[f] = {"count": count, "rate": round(count / total, 4) if total else 0.0}
        providers.append(
            ProviderQuality(
                provider,
                total,
                fields,
                {k: dict(v) for k, v in per[provider].items()},
            )
        )
    active = await repo.active_version(session)
    if active is not None:
        active_model: dict[str, Any] = {
            "id": active.id,
            "created_at": active.created_at,
            "labels": active.labels,
            "scores": active.scores,
        }
    else:
        active_model = {"id": "default", "created_at": None, "labels": None, "scores": None}
    return Quality(start, end, providers, {k: dict(v) for k, v in overall.items()}, active_model)
