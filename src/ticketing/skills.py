"""Skill names: normalisation and the small alias table shared by triage and routing."""

from __future__ import annotations

import re
from collections.abc import Iterable

MAX_SKILL_LENGTH = 50
MAX_SKILLS = 10  # per ticket: what triage may ask for, and what staff may set

# Each group names one skill; the first entry is the canonical spelling.
ALIAS_GROUPS: tuple[tuple[str, ...], ...] = (
    ("javascript", "js", "ecmascript"),
    ("typescript", "ts"),
    ("postgresql", "postgres", "psql", "pg"),
    ("python", "py", "python3"),
    ("kubernetes", "k8s", "kube"),
    ("react", "reactjs", "react.js"),
    ("node.js", "node", "nodejs"),
    ("vue", "vuejs", "vue.js"),
    ("c++", "cpp", "cplusplus"),
    ("c#", "csharp", "dotnet", ".net"),
    ("golang", "go"),
    ("mongodb", "mongo"),
    ("mysql", "mariadb"),
    ("aws", "amazon web services"),
    ("gcp", "google cloud", "google cloud platform"),
    ("azure", "microsoft azure"),
    ("css", "css3"),
    ("html", "html5"),
    ("networking", "network"),
    ("security", "infosec", "appsec"),
    ("database", "databases", "db", "sql"),
    ("email", "e-mail", "smtp"),
    ("authentication", "auth", "login", "sso"),
    ("billing", "payments", "invoicing"),
    ("devops", "ci/cd", "cicd"),
    ("docker", "containers"),
    ("linux", "unix"),
    ("frontend", "front-end", "front end"),
    ("backend", "back-end", "back end"),
    ("machine learning", "ml"),
    ("macos", "mac os", "osx", "os x"),
    ("documentation", "docs"),
    ("installation", "install", "installer"),
    ("accessibility", "a11y"),
    ("performance", "perf"),
)

_CANONICAL: dict[str, str] = {alias: group[0] for group in ALIAS_GROUPS for alias in group}

_SPACES = re.compile(r"\s+")


def normalise_skill(skill: str) -> str:
    """Trim, lower-case and collapse inner whitespace (no alias mapping: that is for matching)."""
    return _SPACES.sub(" ", skill.strip().lower())[:MAX_SKILL_LENGTH]


def normalise_skills(skills: Iterable[str], limit: int | None = None) -> list[str]:
    """Normalise, drop blanks and de-duplicate, keeping the first spelling's order."""
    seen: dict[str, None] = {}
    for skill in skills:
        value = normalise_skill(skill)
        if value and value not in seen:
            seen[value] = None
        if limit is not None and len(seen) >= limit:
            break
    return list(seen)


def canonical_skill(skill: str) -> str:
    """The key two spellings of the same skill share (`JS` and `javascript` -> `javascript`)."""
    value = normalise_skill(skill)
    return _CANONICAL.get(value, value)


def skills_match(required: Iterable[str], offered: Iterable[str]) -> list[str]:
    """Which of `required` are covered by `offered`, compared by canonical form (no regexes)."""
    have = {canonical_skill(s) for s in offered}
    return [skill for skill in required if canonical_skill(skill) in have]
