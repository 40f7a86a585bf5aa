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

The cue lists and weights are hand-written. They were adjusted by reading misclassified public
GitHub issues from three repositories and checked on two others held out (see
`ticketing.triage.evaluation` and `ticketing eval`).
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from functools import lru_cache
from typing import TYPE_CHECKING, Any

from ticketing.skills import (
    ALIAS_GROUPS,
    MAX_SKILLS,
    canonical_skill,
    normalise_skill,
    normalise_skills,
)
from ticketing.triage.base import MAX_NOTES_CHARS, Analysis
from ticketing.vocabulary import Priority, TicketType

# Skills offered when the caller has no list of its own (CLI, evaluation).
DEFAULT_SKILL_VOCABULARY: tuple[str, ...] = (
    "python",
    "javascript",
    "typescript",
    "react",
    "vue",
    "angular",
    "node.js",
    "java",
    "c++",
    "c#",
    "golang",
    "rust",
    "php",
    "ruby",
    "html",
    "css",
    "frontend",
    "backend",
    "api",
    "database",
    "postgresql",
    "mysql",
    "mongodb",
    "redis",
    "sqlite",
    "networking",
    "security",
    "authentication",
    "billing",
    "email",
    "linux",
    "windows",
    "macos",
    "docker",
    "kubernetes",
    "aws",
    "azure",
    "gcp",
    "devops",
    "mobile",
    "android",
    "ios",
    "performance",
    "machine learning",
    "gpu",
    "build",
    "installation",
    "documentation",
    "accessibility",
    "testing",
    "git",
    "hardware",
    "ui design",
    "analytics",
    "storage",
    "backup",
    "monitoring",
    "account management",
    "browser",
    "cryptography",
)

# ---------------------------------------------------------------------------------------------
# Cue tables. Phrases are lower-case word sequences (matched on word tokens, so "fails" never
# matches inside "failsafe"). Weights are rough log-odds chosen by hand.
# ---------------------------------------------------------------------------------------------

_BUG_CUES: dict[str, float] = {
    "bug": 3.0,
    "bugs": 2.0,
    "buggy": 2.5,
    "crash": 3.0,
    "crashes": 3.0,
    "crashed": 3.0,
    "crashing": 3.0,
    "segfault": 3.5,
    "segmentation fault": 3.5,
    "core dumped": 3.0,
    "regression": 3.5,
    "regressed": 3.0,
    "traceback": 2.0,
    "stack trace": 2.0,
    "stacktrace": 2.0,
    "exception": 1.5,
    "broken": 2.0,
    "breaks": 2.0,
    "steps to reproduce": 2.0,
    "repro steps": 2.0,
    "to reproduce": 1.5,
    "expected behavior": 1.5,
    "expected behaviour": 1.5,
    "actual behavior": 1.5,
    "actual behaviour": 1.5,
    "expected result": 1.5,
    "actual result": 1.5,
    "fails": 2.0,
    "failing": 2.0,
    "failure": 2.0,
    "failures": 2.0,
    "error": 1.0,
    "errors": 1.0,
    "incorrect": 2.0,
    "incorrectly": 2.0,
    "wrong": 2.0,
    "wrongly": 2.0,
    "doesn't work": 1.5,
    "does not work": 1.5,
    "stopped working": 2.0,
    "no longer works": 2.5,
    "no longer": 1.5,
    "used to work": 2.5,
    "unexpected": 2.0,
    "unexpectedly": 2.0,
    "throws": 1.5,
    "thrown": 1.5,
    "undefined": 1.5,
    "overflow": 2.0,
    "memory leak": 2.5,
    "leak": 2.0,
    "leaks": 2.0,
    "hangs": 2.0,
    "freezes": 2.0,
    "infinite loop": 2.0,
    "missing": 1.5,
    "intermittent": 2.5,
    "intermittently": 2.5,
    "flaky": 2.5,
    "race condition": 2.5,
    "deadlock": 2.5,
    "shouldn't": 1.5,
    "should not": 1.0,
    "instead of": 1.0,
    "invalid": 1.0,
    "mismatch": 1.5,
    "inconsistent": 1.5,
    "typo": 1.5,
    "glitch": 2.0,
    "not displayed": 1.5,
    "not shown": 1.5,
    "duplicate": 1.0,
    "ignored": 1.5,
    "ignores": 1.5,
    "assertion": 2.0,
    "assert": 1.0,
    "ub": 1.0,
    "sanitizer": 1.5,
    "fix": 1.0,
    "disappears": 1.5,
    "misaligned": 1.5,
    "blank screen": 2.0,
    "500 error": 2.0,
    "internal server error": 2.5,
    "report a bug": 2.0,
    "i expect": 1.0,
    "not found": 1.0,
    "exhausted": 1.5,
    "timeout": 1.0,
    "timeouts": 1.5,
    "timed out": 1.5,
    "outage": 3.0,
    "is down": 2.5,
    "went down": 2.5,
    "502": 1.5,
    "503": 1.5,
    "not loading": 2.0,
    "vulnerability": 2.5,
    "security issue": 2.5,
    "xss": 2.5,
    "exploit": 2.0,
    "injection": 1.5,
    "data loss": 2.5,
    "charged twice": 1.5,
    "flickers": 1.5,
    "flickering": 1.5,
    "gets stuck": 2.0,
}

_FEATURE_CUES: dict[str, float] = {
    "feature request": 4.0,
    "feature": 2.5,
    "features": 1.5,
    "enhancement": 3.0,
    "proposal": 3.0,
    "propose": 2.5,
    "proposed": 1.5,
    "suggestion": 2.5,
    "suggest": 1.5,
    "would be nice": 3.0,
    "would be great": 3.0,
    "would be useful": 3.0,
    "would be helpful": 3.0,
    "it would be": 1.5,
    "it'd be": 2.0,
    "would love": 2.5,
    "would like to see": 3.0,
    "nice to have": 3.0,
    "add support": 3.0,
    "support for": 2.0,
    "add": 1.5,
    "adding": 1.5,
    "allow": 2.0,
    "allows": 1.0,
    "allowing": 1.5,
    "option to": 2.5,
    "an option": 2.0,
    "ability to": 2.5,
    "provide": 1.5,
    "improve": 2.0,
    "improvement": 2.5,
    "improvements": 2.5,
    "idea": 2.0,
    "rfc": 3.0,
    "expose": 2.0,
    "configurable": 2.0,
    "customizable": 2.0,
    "customise": 1.5,
    "customize": 1.5,
    "implement": 1.5,
    "introduce": 2.0,
    "extend": 1.5,
    "use case": 2.0,
    "use cases": 2.0,
    "motivation": 2.0,
    "alternatives": 1.5,
    "describe the solution": 3.0,
    "solution you'd like": 3.0,
    "alternatives you've considered": 3.0,
    "please add": 3.0,
    "could you add": 3.0,
    "can you add": 3.0,
    "wish": 2.0,
    "useful": 1.5,
    "helpful": 1.0,
    "consider": 1.5,
    "deprecate": 1.5,
    "refactor": 1.5,
    "should be able": 2.5,
    "make it easier": 2.5,
    "easier": 1.5,
    "better": 1.0,
    "new": 0.5,
    "instead": 0.5,
    "request": 1.0,
    "requesting": 1.5,
    "request a feature": 3.0,
    "i'd like": 2.0,
    "i would like": 1.5,
    "we should": 2.0,
    "we could": 1.5,
    "better error": 2.0,
    "better errors": 2.0,
    "more helpful": 2.0,
    "warn when": 2.0,
    "warn if": 2.0,
    "warning when": 1.5,
    "error if": 1.5,
    "opt out": 2.0,
    "opting out": 2.0,
    "opt in": 2.0,
    "a setting": 1.5,
    "setting to": 1.5,
    "add a": 1.0,
    "clean up": 1.0,
    "currently there is no": 2.0,
    "there is no way": 2.0,
    "it's not possible": 1.5,
    "support": 1.0,
    "supported": 0.5,
}

_SUPPORT_CUES: dict[str, float] = {
    "how do i": 4.0,
    "how can i": 4.0,
    "how to": 3.0,
    "how do you": 3.0,
    "how does": 2.0,
    "how should": 2.0,
    "is it possible": 3.0,
    "is there a way": 2.5,
    "what is the best way": 4.0,
    "best way to": 3.0,
    "best practice": 2.5,
    "what is": 1.0,
    "what's": 1.0,
    "why": 2.0,
    "why does": 1.0,
    "why is": 1.0,
    "question": 3.0,
    "questions": 2.0,
    "help": 2.0,
    "please help": 3.0,
    "need help": 3.0,
    "help me": 3.0,
    "can't figure": 3.0,
    "cannot figure": 3.0,
    "figure out": 2.0,
    "i'm trying": 2.0,
    "i am trying": 2.0,
    "i tried": 1.5,
    "any idea": 2.5,
    "any ideas": 2.5,
    "any suggestions": 2.5,
    "advice": 2.0,
    "wondering": 2.5,
    "i wonder": 2.5,
    "confused": 2.0,
    "confusing": 1.0,
    "clarify": 1.5,
    "clarification": 2.0,
    "understand": 1.5,
    "explain": 1.5,
    "guidance": 2.0,
    "beginner": 2.5,
    "newbie": 2.5,
    "stuck": 2.0,
    "unable to": 1.0,
    "i can't": 1.5,
    "i cannot": 1.5,
    "where can i": 3.0,
    "where is": 1.5,
    "thanks in advance": 2.5,
    "thank you": 1.0,
    "forgot my password": 3.0,
    "reset my password": 3.0,
    "my account": 2.0,
    "access to": 1.0,
    "not working": 1.5,
    "doesn't work": 0.5,
    "my code": 2.0,
    "my project": 1.5,
    "my computer": 2.0,
    "my laptop": 2.0,
    "pls": 2.0,
    "plz": 2.0,
    "tutorial": 1.0,
    "installing": 1.0,
    "can someone": 2.5,
    "can anyone": 2.5,
    "does anyone": 2.5,
    "anyone know": 2.5,
    "what should i do": 3.0,
    "what can i do": 3.0,
    "how can": 2.0,
    "i'm new": 2.5,
    "i am new": 2.5,
    "hello": 1.0,
    "hi": 1.0,
    "dear": 1.5,
    "hope": 1.0,
    "not sure": 1.5,
    "am i": 1.5,
    "is this expected": 2.0,
    "is this a bug": 2.0,
    "or is it": 1.0,
    "any help": 3.0,
    "appreciated": 1.5,
}

_TECHNICAL_CUES: dict[str, float] = {
    "deploy": 2.0,
    "deploying": 2.0,
    "deployment": 2.5,
    "infrastructure": 3.0,
    "provision": 2.0,
    "provisioning": 2.0,
    "server setup": 3.0,
    "set up a server": 3.0,
    "configuration": 0.5,
    "configure": 0.5,
    "migration": 2.0,
    "migrate": 2.0,
    "performance tuning": 3.5,
    "tuning": 2.0,
    "capacity": 2.0,
    "scaling": 2.0,
    "autoscaling": 2.5,
    "load balancer": 3.0,
    "ssl certificate": 3.0,
    "tls certificate": 3.0,
    "certificate renewal": 3.0,
    "dns record": 3.0,
    "dns records": 3.0,
    "backups": 1.0,
    "backup": 1.0,
    "disaster recovery": 3.0,
    "monitoring": 2.0,
    "alerting": 2.0,
    "cron job": 2.5,
    "database migration": 3.5,
    "schema migration": 3.0,
    "cluster": 1.5,
    "terraform": 3.0,
    "ansible": 3.0,
    "helm chart": 3.0,
    "ci pipeline": 2.5,
    "maintenance window": 3.0,
    "upgrade the server": 3.0,
    "server upgrade": 3.0,
}

# Priority cues. A user writing "URGENT" is not believed beyond "high": that word is free to type,
# and prompt-injection text tends to ask for it.
_URGENT_CUES: tuple[str, ...] = (
    "outage",
    "outages",
    "down for everyone",
    "down for all",
    "production is down",
    "production down",
    "prod is down",
    "prod down",
    "site is down",
    "website is down",
    "service is down",
    "server is down",
    "system is down",
    "app is down",
    "everything is down",
    "is completely down",
    "data loss",
    "lost data",
    "losing data",
    "data corruption",
    "corrupted data",
    "security breach",
    "breach",
    "breached",
    "vulnerability",
    "vulnerabilities",
    "exploit",
    "exploited",
    "remote code execution",
    "rce",
    "sql injection",
    "xss",
    "credentials leaked",
    "leaked credentials",
    "ransomware",
    "hacked",
    "compromised",
    "cve",
    "loss of funds",
)
_HIGH_CUES: tuple[str, ...] = (
    "crash",
    "crashes",
    "crashed",
    "crashing",
    "segfault",
    "segmentation fault",
    "core dumped",
    "blocker",
    "blocking",
    "blocked",
    "critical",
    "severe",
    "many users",
    "multiple users",
    "several users",
    "all users",
    "all customers",
    "every user",
    "payment failing",
    "payments failing",
    "payment failed",
    "payments failed",
    "cannot pay",
    "can't pay",
    "payment fails",
    "payments fail",
    "checkout fails",
    "checkout is broken",
    "charged twice",
    "double charged",
    "double charge",
    "overcharged",
    "can't log in",
    "cannot log in",
    "can't login",
    "cannot login",
    "unable to log in",
    "unable to login",
    "locked out",
    "urgent",
    "urgently",
    "asap",
    "emergency",
    "showstopper",
    "deadline",
    "hangs",
    "freezes",
    "memory leak",
    "regression",
    "internal server error",
    "500 error",
    "deadlock",
    "data race",
)
_LOW_CUES: tuple[str, ...] = (
    "typo",
    "typos",
    "spelling",
    "misspelled",
    "misspelling",
    "cosmetic",
    "minor",
    "nice to have",
    "low priority",
    "not urgent",
    "no rush",
    "whenever you can",
    "when you have time",
    "alignment",
    "misaligned",
    "wording",
    "grammar",
    "color",
    "colour",
    "font",
    "padding",
    "nitpick",
    "nit",
)
# Whole-user-base scope: an access or payment failure for everyone is an outage.
_SCOPE_ALL: frozenset[str] = frozenset(
    {
        "all users",
        "all customers",
        "every user",
        "everyone",
        "all of our users",
        "nobody",
        "no one",
    }
)
_ACCESS_FAILURE: frozenset[str] = frozenset(
    {
        "can't log in",
        "cannot log in",
        "can't login",
        "cannot login",
        "unable to log in",
        "unable to login",
        "payment failing",
        "payments failing",
        "payment failed",
        "payments failed",
        "cannot pay",
        "can't pay",
        "locked out",
    }
)

# Strong cues that imply a skill (canonical name) even when the skill's own name is absent.
_SKILL_HINTS: dict[str, tuple[str, ...]] = {
    "authentication": (
        "login",
        "log in",
        "logging in",
        "sign in",
        "signin",
        "sign on",
        "password",
        "password reset",
        "reset password",
        "2fa",
        "two factor",
        "mfa",
        "otp",
        "sso",
        "oauth",
        "saml",
        "locked out",
        "credentials",
    ),
    "billing": (
        "invoice",
        "invoices",
        "refund",
        "refunds",
        "charged",
        "subscription",
        "payment",
        "payments",
        "credit card",
        "receipt",
        "overcharged",
    ),
    "email": ("inbox", "mailbox", "outlook", "smtp", "newsletter", "unsubscribe", "spam folder"),
    "networking": (
        "vpn",
        "wifi",
        "wi fi",
        "dns",
        "firewall",
        "proxy",
        "packet loss",
        "ip address",
        "port forwarding",
        "tcp",
        "connection refused",
        "p2p",
        "peers",
        "tor",
        "i2p",
    ),
    "security": (
        "vulnerability",
        "exploit",
        "xss",
        "csrf",
        "sql injection",
        "cve",
        "phishing",
        "malware",
        "breach",
        "ransomware",
        "hacked",
    ),
    "database": ("sql", "query", "queries", "deadlock", "sqlite", "database", "schema"),
    "performance": (
        "slow",
        "slowness",
        "latency",
        "memory leak",
        "high cpu",
        "cpu usage",
        "memory usage",
        "hangs",
        "freezes",
        "lag",
        "laggy",
        "sluggish",
        "performance",
    ),
    "frontend": ("button", "layout", "stylesheet", "dropdown", "ui", "dark mode", "responsive"),
    "backend": ("internal server error", "500 error", "server side", "endpoint"),
    "api": ("endpoint", "endpoints", "rest api", "graphql", "webhook", "api key", "rpc"),
    "devops": ("deploy", "deployment", "pipeline", "github actions", "jenkins", "terraform", "ci"),
    "docker": ("container", "dockerfile", "docker compose"),
    "kubernetes": ("pod", "pods", "kubectl", "helm"),
    "linux": ("ubuntu", "debian", "centos", "fedora", "arch linux", "manjaro", "systemd"),
    "windows": ("powershell", "windows 10", "windows 11", "exe"),
    "macos": ("macbook", "mac", "homebrew", "apple silicon", "m1", "m2"),
    "ios": ("iphone", "ipad", "xcode", "app store"),
    "android": ("play store", "apk", "kotlin"),
    "mobile": ("iphone", "ipad", "android", "mobile app", "smartphone", "tablet"),
    "machine learning": (
        "model training",
        "neural network",
        "deep learning",
        "tensorflow",
        "pytorch",
        "keras",
    ),
    "gpu": ("cuda", "nvidia", "cudnn", "graphics card", "rocm"),
    "build": (
        "compile",
        "compiling",
        "compilation",
        "compiler",
        "cmake",
        "makefile",
        "linker",
        "gcc",
        "clang",
        "msvc",
    ),
    "installation": ("installing", "uninstall", "pip install"),
    "documentation": ("readme", "wiki", "tutorial"),
    "python": ("pip", "traceback", "django", "flask", "fastapi", "numpy", "pandas"),
    "javascript": ("npm", "yarn", "jquery", "webpack", "node.js"),
    "java": ("jvm", "maven", "gradle", "nullpointerexception", "spring boot"),
    "c++": ("g++", "std"),
    "git": ("merge conflict", "pull request", "git"),
    "accessibility": ("screen reader", "a11y", "keyboard navigation", "aria", "contrast"),
    "testing": ("unit test", "unit tests", "test fails", "flaky test", "flaky"),
    "hardware": ("printer", "scanner", "docking station", "laptop", "battery"),
    "cryptography": ("encryption", "encrypted", "private key", "cipher"),
}

# File extensions in the text ("main.py") are strong language hints.
_EXTENSION_HINTS: dict[str, str] = {
    "py": "python",
    "js": "javascript",
    "jsx": "javascript",
    "mjs": "javascript",
    "ts": "typescript",
    "tsx": "typescript",
    "cpp": "c++",
    "cc": "c++",
    "hpp": "c++",
    "java": "java",
    "go": "golang",
    "rs": "rust",
    "php": "php",
    "rb": "ruby",
    "sql": "database",
    "css": "css",
    "html": "html",
}

# Aliases too ambiguous as plain English to match in lower case ("node" of a tree), and ones
# not to match in free text at all ("Go to settings"): those skills match by other spellings.
_CASE_SENSITIVE_ALIASES: dict[str, str] = {"node": "Node", "c": "C", "r": "R"}
_NOT_IN_TEXT: frozenset[str] = frozenset({"go"})

_TITLE_WEIGHT = 2.5
_HEADING_WEIGHT = 0.5
_MAX_BODY_CHARS = 6000  # cues sit near the top; long logs only cost time
_TYPE_THRESHOLD = 1.0  # below this nothing was really detected
_TECHNICAL_MARGIN = 1.0  # technical must beat the best other type by this much
_MIN_WORDS = 4  # fewer words than this and no cue: "other"
# A small lean towards "support": in a helpdesk, a ticket that reads half like a bug report and
# half like a question is usually someone who needs help first.
_TYPE_PRIOR: dict[TicketType, float] = {TicketType.support: 0.5}

# Invisible or machine-written parts of a report: template instructions in HTML comments,
# collapsed <details> (system info dumps), and links (their words are paths, not prose).
_HIDDEN = re.compile(r"<!--.*?(?:-->|$)|<details>.*?(?:</details>|$)", re.S | re.I)
_URL = re.compile(r"https?://\S+|www\.\S+|(?<=\])\([^)\s]*\)")
_CODE_FENCE = re.compile(r"```.*?(?:```|$)", re.S)
# Template headings ("**What is the expected behavior?**") are the form's words, not the
# reporter's: scanned at a lower weight and their question marks are not questions.
_HEADING_LINE = re.compile(r"^#{1,6}[ \t][^\n]*", re.M)
_BOLD_PROMPT = re.compile(r"\*\*[^\n]{1,300}?(?:[?:]\*\*|\*\*:)")
_TOKEN = re.compile(r"[a-z0-9]+(?:'[a-z]+)?|\+\+")
_TRACE_LITERALS = ("Traceback (most recent call last)", "Segmentation fault", "core dumped")
_JS_JAVA_FRAME = re.compile(r"^[ \t]+at [\w$.<>]+ ?\(.*:\d+(?::\d+)?\)", re.M)
_PY_FRAME = re.compile(r"^[ \t]*File \"[^\"\n]+\", line \d+", re.M)
_ERROR_LINE = re.compile(r"\b\w+(?:Error|Exception): ")  # TypeError: ..., NullPointerException: ...
_EXTENSION = re.compile(r"\w\.(" + "|".join(_EXTENSION_HINTS) + r")\b")
# Issue-tracker conventions: "[Bug] ...", "[DevTools Bug]: ...", "Feature request: ...".
_TAG_WORDS = (
    r"bug|bug report|regression|crash|feature|feature request|feature idea|enhancement|proposal|"
    r"rfc|suggestion|idea|improvement|question|help|support|how to"
)
_TITLE_TAG = re.compile(
    rf"^\W*?(?:\[[^\]]*?\b({_TAG_WORDS})\b[^\]]*\]|({_TAG_WORDS})\b[^:\n]{{0,20}}:)", re.I
)
_WH_START = re.compile(r"^\W*(how|why|what|where|when|which|who)\b", re.I)
_AUX_START = re.compile(r"^\W*(is|are|can|could|does|do|did|should|will|would|has|have)\b", re.I)
_FIRST_PERSON = re.compile(r"\b(i|i'm|im|my|me|i've)\b", re.I)
_FIRST_PERSON_WORDS = frozenset({"i", "i'm", "im", "my", "me", "i've", "i'd", "myself"})
_OWN_SETUP = "written about the reporter's own setup"
_WE_WORDS = frozenset({"we", "we're", "we'd", "our", "us"})
# Titles phrased as an instruction ("Add dark mode", "Make export faster") ask for a change.
_IMPERATIVE_START = re.compile(
    r"^\W*(add|allow|make|support|provide|enable|expose|implement|introduce|improve|enhance|"
    r"display|show|return|include|use|let|remove|deprecate|hide|rename|move|expand|extend|"
    r"replace|switch|accept|create|avoid|consider|decouple|split|warn|throw|emit|adopt|offer|"
    r"prefer|drop|reduce|increase|optimi[sz]e|refactor|simplify|unify|export|document)\b",
    re.I,
)
_FIX_START = re.compile(r"^\W*(fix|fixes|fixed)\b", re.I)
# A title that states something does not happen describes a defect.
_TITLE_NEGATION = re.compile(
    r"\b(does ?not|doesn't|do ?not|don't|did ?not|didn't|is ?not|isn't|are ?not|aren't|"
    r"was ?not|wasn't|not|cannot|can't|won't|lacks?|fails?|failed|failing|broken|never)\b",
    re.I,
)
# Text aimed at an AI triager rather than at people. Only reported in the notes (the rules have
# nothing to obey); the check is a fixed pattern of our own, not built from the ticket.
_INJECTION = re.compile(
    r"\b(?:ignore|disregard|forget)\s+(?:all\s+|any\s+)?(?:the\s+|your\s+)?"
    r"(?:previous|prior|above|earlier)\s+(?:instructions|prompts?|rules|messages)"
    r"|\bsystem\s+prompt\b|\byou\s+are\s+now\b|\bassign\s+(?:this|it|the\s+ticket)\s+to\b",
    re.I,
)
_NEGATIONS = frozenset({"no", "not", "without", "never", "non", "isn't", "wasn't", "nothing"})


@dataclass(frozen=True)
class _Hit:
    kind: str  # a ticket type, "urgent" / "high" / "low", "scope" (everyone) or "skill"
    key: str  # the cue phrase, or the canonical skill for "skill"
    weight: float


def _tokens(text: str) -> list[str]:
    return _TOKEN.findall(text.lower().replace("\u2019", "'"))


def _phrase_key(phrase: str) -> str:
    return " ".join(_tokens(phrase))


def _build_cue_index() -> tuple[dict[str, list[_Hit]], frozenset[str]]:
    index: dict[str, list[_Hit]] = {}

    def add(kind: str, phrase: str, key: str, weight: float) -> None:
        index.setdefault(_phrase_key(phrase), []).append(_Hit(kind, key, weight))

    type_tables = (
        (TicketType.bug.value, _BUG_CUES),
        (TicketType.feature.value, _FEATURE_CUES),
        (TicketType.support.value, _SUPPORT_CUES),
        (TicketType.technical.value, _TECHNICAL_CUES),
    )
    for kind, table in type_tables:
        for phrase, weight in table.items():
            add(kind, phrase, phrase, weight)
    for kind, phrases in (("urgent", _URGENT_CUES), ("high", _HIGH_CUES), ("low", _LOW_CUES)):
        for phrase in phrases:
            add(kind, phrase, phrase, 1.0)
    for phrase in _SCOPE_ALL:
        add("scope", phrase, phrase, 1.0)
    for skill, phrases in _SKILL_HINTS.items():
        for phrase in phrases:
            add("skill", phrase, skill, 1.0)
    # Every proper prefix of a multi-word cue: the scan extends a phrase only while it is one.
    prefixes = {
        " ".join(words[:n])
        for words in (key.split(" ") for key in index)
        for n in range(1, len(words))
    }
    return index, frozenset(prefixes)


_CUE_INDEX, _CUE_PREFIXES = _build_cue_index()


def _scan(tokens: list[str]) -> list[tuple[_Hit, bool]]:
    """Every cue found in `tokens`, with whether it was negated ("no data loss")."""
    found: list[tuple[_Hit, bool]] = []
    count = len(tokens)
    for i, token in enumerate(tokens):
        key = token
        j = i + 1
        while True:
            hits = _CUE_INDEX.get(key)
            if hits:
                negated = any(t in _NEGATIONS for t in tokens[max(0, i - 2) : i])
                found.extend((hit, negated) for hit in hits)
            if j >= count or key not in _CUE_PREFIXES:
                break
            key = f"{key} {tokens[j]}"
            j += 1
    return found


@dataclass(frozen=True)
class _SkillMatcher:
    pattern: re.Pattern[str] | None
    by_alias: dict[str, str]  # lower-case spelling found in text -> known skill spelling
    by_canonical: dict[str, str]  # canonical skill -> known skill spelling


def _trie_pattern(words: Iterable[str]) -> str:
    """One regex alternative for many literal words, shared prefixes factored out.

    `(?:a|b|...)` over ~100 skills makes the engine try every branch at every position; the trie
    form tries one branch per character. Literals are escaped: this is OUR vocabulary only.
    """
    trie: dict[str, Any] = {}
    for word in words:
        node = trie
        for char in word:
            node = node.setdefault(char, {})
        node[""] = {}

    def emit(node: dict[str, Any]) -> str:
        ends = "" in node
        branches = [
            (r"\s+" if char == " " else re.escape(char)) + emit(child)
            for char, child in sorted(node.items())
            if char
        ]
        if not branches:
            return ""
        body = branches[0] if len(branches) == 1 else "(?:" + "|".join(branches) + ")"
        if ends:
            return f"(?:{body})?"
        return body

    return emit(trie)


@lru_cache(maxsize=64)
def _skill_matcher(known: tuple[str, ...]) -> _SkillMatcher:
    """Compile one matcher per list of known skills (cached: the list rarely changes)."""
    by_canonical: dict[str, str] = {}
    for skill in sorted(set(normalise_skills(known))):
        by_canonical.setdefault(canonical_skill(skill), skill)
    groups = {group[0]: group for group in ALIAS_GROUPS}
    by_alias: dict[str, str] = {}
    for canonical, spelling in by_canonical.items():
        for variant in (spelling, canonical, *groups.get(canonical, ())):
            if normalise_skill(variant) not in _NOT_IN_TEXT:
                by_alias.setdefault(normalise_skill(variant), spelling)
    if not by_alias:
        return _SkillMatcher(None, by_alias, by_canonical)
    # An optional plural "s" ("emails", "builds"), resolved back to the alias when matched.
    trie = _trie_pattern(by_alias)
    pattern = re.compile(rf"(?<![\w+#.])(?:{trie})s?(?![\w+#]|\.\w)", re.I)
    return _SkillMatcher(pattern, by_alias, by_canonical)


@dataclass
class _Signals:
    """Everything detected in one ticket, kept for the notes."""

    type_scores: dict[str, float] = field(default_factory=dict)
    type_cues: dict[str, list[str]] = field(default_factory=dict)
    urgent: list[str] = field(default_factory=list)
    high: list[str] = field(default_factory=list)
    low: list[str] = field(default_factory=list)
    scope_all: bool = False
    skill_scores: dict[str, float] = field(default_factory=dict)
    skill_first: dict[str, int] = field(default_factory=dict)
    title_skills: set[str] = field(default_factory=set)
    words: int = 0
    injection: bool = False


def _split_body(description: str) -> tuple[str, str, str]:
    """(prose, headings, code) of a description, hidden parts and links dropped, each capped."""
    text = description[: _MAX_BODY_CHARS * 3]
    # The substring checks skip regex passes that cannot match (most tickets are plain text).
    if "<!--" in text or "<details" in text.lower():
        text = _HIDDEN.sub(" ", text)
    if "http" in text or "www." in text or "](" in text:
        text = _URL.sub(" ", text)
    code = ""
    if "```" in text:
        code = " ".join(_CODE_FENCE.findall(text))
        text = _CODE_FENCE.sub(" ", text)
    headings: list[str] = []
    if "#" in text:
        headings.extend(_HEADING_LINE.findall(text))
        text = _HEADING_LINE.sub(" ", text)
    if "**" in text:
        headings.extend(_BOLD_PROMPT.findall(text))
        text = _BOLD_PROMPT.sub(" ", text)
    prose = text
    return prose[:_MAX_BODY_CHARS], "\n".join(headings)[:_MAX_BODY_CHARS], code[:_MAX_BODY_CHARS]


def _add_type(signals: _Signals, kind: str, weight: float, cue: str) -> None:
    signals.type_scores[kind] = signals.type_scores.get(kind, 0.0) + weight
    cues = signals.type_cues.setdefault(kind, [])
    if cue not in cues:
        cues.append(cue)


def _collect(title: str, prose: str, headings: str, code: str, matcher: _SkillMatcher) -> _Signals:
    signals = _Signals()
    order = 0
    in_title = False

    def note_skill(skill: str, weight: float) -> None:
        nonlocal order
        if in_title:
            signals.title_skills.add(skill)
        signals.skill_scores[skill] = signals.skill_scores.get(skill, 0.0) + weight
        if skill not in signals.skill_first:
            signals.skill_first[skill] = order
            order += 1

    fields = ((title, _TITLE_WEIGHT), (prose, 1.0), (headings, _HEADING_WEIGHT))
    for position, (text, weight) in enumerate(fields):
        in_title = position == 0
        seen: set[tuple[str, str]] = set()
        tokens = _tokens(text)
        signals.words += len(tokens)
        for hit, negated in _scan(tokens):
            # Each cue counts once per field: a long log repeating "error" is still one error.
            if (hit.kind, hit.key) in seen:
                continue
            seen.add((hit.kind, hit.key))
            if hit.kind == "skill":
                if hit.key in matcher.by_canonical:
                    note_skill(matcher.by_canonical[hit.key], 0.5 * weight)
            elif hit.kind in ("urgent", "high", "low"):
                if not negated:
                    getattr(signals, hit.kind).append(hit.key)
            elif hit.kind == "scope":
                signals.scope_all = signals.scope_all or not negated
            else:
                _add_type(signals, hit.kind, hit.weight * weight, hit.key)
        named: set[str] = set()
        if matcher.pattern is not None:
            for match in matcher.pattern.finditer(text):
                found = match.group(0)
                alias = normalise_skill(found)
                if alias not in matcher.by_alias and alias.endswith("s"):
                    found, alias = found[:-1], alias[:-1]
                required_form = _CASE_SENSITIVE_ALIASES.get(alias)
                if required_form is not None and found != required_form:
                    continue
                skill = matcher.by_alias.get(alias)
                if skill is not None and skill not in named:
                    named.add(skill)
                    note_skill(skill, weight)
        for ext in set(_EXTENSION.findall(text.lower())):
            skill = matcher.by_canonical.get(canonical_skill(_EXTENSION_HINTS[ext]))
            if skill is not None and (skill, "ext") not in seen:
                seen.add((skill, "ext"))
                note_skill(skill, 0.5 * weight)

    _structural_cues(signals, title, prose, code)
    signals.injection = bool(_INJECTION.search(title) or _INJECTION.search(prose))
    return signals


def _structural_cues(signals: _Signals, title: str, prose: str, code: str) -> None:
    """Cues that are about shape rather than words: question titles, stack traces, tags."""
    stripped = title.strip()
    tag = _TITLE_TAG.match(stripped)
    if tag:
        word = (tag.group(1) or tag.group(2)).lower()
        if word in ("bug", "bug report", "regression", "crash"):
            _add_type(signals, TicketType.bug.value, 3.0, "tagged as a bug")
        elif word in ("question", "help", "support", "how to"):
            _add_type(signals, TicketType.support.value, 3.0, "tagged as a question")
        else:
            _add_type(signals, TicketType.feature.value, 3.0, "tagged as a request")
    if stripped.endswith("?"):
        _add_type(signals, TicketType.support.value, 2.0, "question in title")
    if _WH_START.match(stripped):
        _add_type(signals, TicketType.support.value, 2.0, "question in title")
    elif _AUX_START.match(stripped) and "?" in stripped:
        _add_type(signals, TicketType.support.value, 1.0, "question in title")
    if _FIRST_PERSON.search(stripped):
        _add_type(signals, TicketType.support.value, 1.5, _OWN_SETUP)
    if _IMPERATIVE_START.match(stripped):
        _add_type(signals, TicketType.feature.value, 2.5, "title asks for a change")
    elif _FIX_START.match(stripped):
        _add_type(signals, TicketType.bug.value, 2.0, "title asks for a fix")
    if _TITLE_NEGATION.search(stripped):
        _add_type(signals, TicketType.bug.value, 1.5, "title says something does not work")
    # People asking for help write about themselves ("I tried", "my setup"); maintainers filing
    # defects or plans write impersonally or as "we".
    tokens = _tokens(stripped + " " + prose)
    if tokens:
        me = sum(1 for t in tokens if t in _FIRST_PERSON_WORDS) / len(tokens)
        if me >= 0.03:
            weight = 2.5 if me >= 0.05 else 1.5
            _add_type(signals, TicketType.support.value, weight, _OWN_SETUP)
        if sum(1 for t in tokens if t in _WE_WORDS) / len(tokens) >= 0.01:
            _add_type(signals, TicketType.feature.value, 0.5, "written as a team plan")
    questions = prose.count("?")
    if questions:
        _add_type(signals, TicketType.support.value, 0.5 * min(questions, 4), "asks questions")
    if _has_trace(code) or _has_trace(prose):
        _add_type(signals, TicketType.bug.value, 2.0, "stack trace")


def _has_trace(text: str) -> bool:
    """A stack trace or runtime error output (substring checks first: regexes are slower)."""
    if any(literal in text for literal in _TRACE_LITERALS):
        return True
    if " at " in text and _JS_JAVA_FRAME.search(text):
        return True
    if 'File "' in text and _PY_FRAME.search(text):
        return True
    return ("Error: " in text or "Exception: " in text) and _ERROR_LINE.search(text) is not None


def _decide_type(signals: _Signals) -> TicketType:
    scores = signals.type_scores
    technical = scores.get(TicketType.technical.value, 0.0)
    best_other = max((v for k, v in scores.items() if k != TicketType.technical.value), default=0.0)
    # Technical (infrastructure) work is claimed only on clear evidence; otherwise a bug,
    # feature or question reading of the same words is more useful to the moderator.
    distinct = len(signals.type_cues.get(TicketType.technical.value, ()))
    if technical >= 4.0 and distinct >= 2 and technical >= best_other + _TECHNICAL_MARGIN:
        return TicketType.technical
    if best_other < _TYPE_THRESHOLD:
        # Nothing recognisable: in a helpdesk that is most often someone asking for help;
        # "other" is kept for text too short to say anything about.
        return TicketType.other if signals.words < _MIN_WORDS else TicketType.support
    # Deterministic tie-break: bug, then support, then feature.
    ranked = (TicketType.bug, TicketType.support, TicketType.feature)
    return max(ranked, key=lambda t: scores.get(t.value, 0.0) + _TYPE_PRIOR.get(t, 0.0))


def _decide_priority(signals: _Signals, ticket_type: TicketType) -> tuple[Priority, str]:
    access_for_all = signals.scope_all and any(c in _ACCESS_FAILURE for c in signals.high)
    if signals.urgent or access_for_all:
        reason = signals.urgent[0] if signals.urgent else "access failing for everyone"
        return Priority.urgent, f"mentions {reason}"
    if signals.high:
        return Priority.high, f"mentions {signals.high[0]}"
    if signals.low:
        return Priority.low, f"mentions {signals.low[0]}"
    if ticket_type is TicketType.support:
        return Priority.low, "a question, nothing is broken"
    return Priority.medium, ""


_ASK_FOR: dict[TicketType, str] = {
    TicketType.bug: "steps to reproduce, expected vs actual behaviour, version and logs",
    TicketType.feature: "the problem it solves, who needs it and today's workaround",
    TicketType.support: "what they tried, the exact error message and their environment",
    TicketType.technical: "the environment (versions, configuration) and recent changes",
    TicketType.other: "a clearer description of what they need",
}
_TYPE_LABEL: dict[TicketType, str] = {
    TicketType.bug: "Looks like a bug",
    TicketType.feature: "Looks like a feature request",
    TicketType.support: "Looks like a support question",
    TicketType.technical: "Looks like technical/infrastructure work",
    TicketType.other: "Type unclear",
}


def _shown_cues(cues: list[str], limit: int = 4) -> list[str]:
    """The first few cues, leaving out ones inside a longer cue ("to reproduce")."""
    shown = [c for c in cues if not any(c != o and f" {c} " in f" {o} " for o in cues)]
    return shown[:limit]


def _notes(
    signals: _Signals, ticket_type: TicketType, priority: Priority, why: str, skills: list[str]
) -> str:
    cues = _shown_cues(signals.type_cues.get(ticket_type.value, []))
    if cues:
        detail = f" ({', '.join(cues)})"
    elif ticket_type is TicketType.other:
        detail = " (too little text to go on)"
    else:
        detail = " (weak signals only)"
    parts = [f"{_TYPE_LABEL[ticket_type]}{detail}."]
    if skills:
        parts.append(f"Matched skills: {', '.join(skills)}.")
    else:
        parts.append("No known skill matched.")
    parts.append(f"{priority.value.capitalize()}{': ' + why if why else ''}.")
    parts.append(f"Ask for: {_ASK_FOR[ticket_type]}.")
    if signals.injection:
        parts.append(
            "Note: the text contains instructions addressed to an automated triager; "
            "they were treated as plain text."
        )
    return " ".join(parts)[:MAX_NOTES_CHARS]


RULES_MODEL = "local-rules-v1"

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
        self.model: str | None = RULES_MODEL
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
                RULES_MODEL,
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
        predictions: Sequence[Prediction | None] = (
            model.predict_many(items) if model is not None else [None] * len(items)
        )
        classes = set(model.type_classes) if model is not None else set()
        matcher = _skill_matcher(tuple(known_skills))
        return [
            _analysis(title, description, matcher, prediction, classes)
            for (title, description), prediction in zip(items, predictions, strict=True)
        ]

    async def analyze(self, title: str, description: str, known_skills: Sequence[str]) -> Analysis:
        """The TriageProvider entry point: fast enough to run inline."""
        return self.analyze_sync(title, description, known_skills)

    async def aclose(self) -> None:
        """Nothing to close: no connections."""


def _analysis(
    title: str,
    description: str,
    matcher: _SkillMatcher,
    prediction: Prediction | None,
    model_classes: set[str],
) -> Analysis:
    prose, headings, code = _split_body(description)
    signals = _collect(title[:1000], prose, headings, code, matcher)
    rules_type = _decide_type(signals)
    confidence: dict[str, float] | None = None
    learned = ""
    # The rules keep the types the model never learned: technical work (claimed only on clear
    # evidence) and "other" for a ticket without a single word.
    rules_only = rules_type is TicketType.technical or (
        rules_type is TicketType.other and signals.words == 0
    )
    if prediction is None or (rules_only and rules_type.value not in model_classes):
        ticket_type = rules_type
    else:
        ticket_type = prediction.ticket_type
        confidence = dict(prediction.confidence)
        learned = f"Type from the learned model ({confidence['ticket_type']:.0%} sure)."
    if prediction is not None and prediction.priority is not None and confidence is not None:
        priority, why = prediction.priority, "learned model"
    else:
        priority, why = _decide_priority(signals, ticket_type)
        if confidence is not None:
            confidence.pop("priority", None)  # the rules chose it: no probability to give
    skills = _rank_skills(signals)
    notes = _notes(signals, ticket_type, priority, why, skills)
    if learned:
        notes = f"{learned} {notes}"[:MAX_NOTES_CHARS]
    return Analysis(
        required_skills=skills,
        priority=priority,
        ticket_type=ticket_type,
        helpful_notes=notes,
        confidence=confidence,
    )


def _rank_skills(signals: _Signals) -> list[str]:
    """Skills named in the title first, then by evidence, then by first appearance."""
    ranked = sorted(
        signals.skill_scores,
        key=lambda s: (
            s not in signals.title_skills,
            -signals.skill_scores[s],
            signals.skill_first[s],
        ),
    )
    return ranked[:MAX_SKILLS]
