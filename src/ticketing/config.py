"""The one settings object. Every setting in the API contract lives here."""

from __future__ import annotations

import logging
import secrets
from functools import lru_cache
from typing import Literal

from pydantic import Field, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from ticketing.errors import ConfigurationError
from ticketing.ratelimit import IPNetwork, parse_networks

log = logging.getLogger(__name__)

DEFAULT_DATABASE_URL = "sqlite+aiosqlite:///./ticketing.db"
ALLOWED_ALGORITHMS = ("HS256", "HS384", "HS512")
MIN_SECRET_KEY_BYTES = 32


def _split_csv(value: object) -> list[str]:
    if value is None:
        return []
    if isinstance(value, str):
        return [part.strip() for part in value.split(",") if part.strip()]
    if isinstance(value, list | tuple):
        return [str(part).strip() for part in value if str(part).strip()]
    raise ValueError("expected a comma-separated list")


class Settings(BaseSettings):
    model_config = SettingsConfigDict(
        env_file=".env", env_file_encoding="utf-8", extra="ignore", case_sensitive=False
    )

    database_url: str = DEFAULT_DATABASE_URL
    # Only read to explain the move away from MongoDB (see check_storage()).
    mongodb_url: str | None = None

    secret_key: str | None = None
    algorithm: str = "HS256"
    access_token_expire_minutes: int = Field(30, ge=1, le=60 * 24 * 30)
    debug: bool = False
    app_name: str = "AI Ticket System"
    public_url: str = "http://127.0.0.1:8000"

    # Comma lists; kept as str so pydantic-settings does not try to JSON-decode them.
    admin_emails: str = ""
    signup_mode: Literal["open", "invite"] = "open"
    allowed_email_domains: str = ""

    otp_ttl_minutes: int = Field(10, ge=1, le=60)
    otp_max_attempts: int = Field(5, ge=1, le=20)
    otp_resend_seconds: int = Field(60, ge=0, le=3600)
    otp_max_per_hour: int = Field(5, ge=1, le=100)
    # Addresses one client may have sign-in codes mailed to per hour (per API process).
    auth_requests_per_client_per_hour: int = Field(100, ge=1)
    # Reverse proxies whose X-Forwarded-For is believed (comma list of addresses or networks).
    trusted_proxies: str = ""

    ai_provider: Literal["auto", "gemini", "openai", "local"] = "auto"
    gemini_api_key: str | None = None
    gemini_model: str = "gemini-2.5-flash"
    gemini_base_url: str | None = None
    openai_base_url: str | None = None
    openai_api_key: str | None = None
    openai_model: str | None = None
    ai_timeout_seconds: float = Field(20.0, gt=0, le=600)
    ai_max_retries: int = Field(2, ge=0, le=10)
    # Triage that learns: retraining from corrections, review flag, examples in AI prompts.
    triage_retrain_hours: float = Field(24.0, gt=0, le=24 * 365)
    triage_min_new_labels: int = Field(30, ge=1)
    triage_examples: int = Field(3, ge=0, le=20)
    triage_review_threshold: float = Field(0.5, ge=0, le=1)
    # Labelled CSV added (weighted 0.3) to the organisation's labels when retraining; empty: none.
    triage_base_csv: str = ""

    email_backend: Literal["auto", "smtp", "console"] = "auto"
    smtp_host: str | None = None
    smtp_port: int = Field(587, ge=1, le=65535)
    smtp_user: str | None = None
    smtp_password: str | None = None
    smtp_tls: Literal["starttls", "ssl", "none"] = "starttls"
    smtp_timeout_seconds: float = Field(30.0, gt=0)
    from_email: str = "noreply@localhost"
    # The address requesters write to: From and Reply-To of ticket mail (default FROM_EMAIL).
    support_email: str | None = None

    worker: Literal["embedded", "external"] = "embedded"
    worker_concurrency: int = Field(16, ge=1, le=1000)
    worker_poll_seconds: float = Field(1.0, gt=0, le=60)
    job_lease_seconds: float = Field(120.0, ge=5)

    # The support mailbox (the email channel): read over IMAP when INBOUND_EMAIL=imap.
    inbound_email: Literal["off", "imap"] = "off"
    imap_host: str | None = None
    imap_port: int = Field(993, ge=1, le=65535)
    imap_user: str | None = None
    imap_password: str | None = None
    imap_tls: Literal["ssl", "starttls", "none"] = "ssl"
    imap_folder: str = "INBOX"
    imap_done_folder: str = "Processed"
    imap_poll_seconds: float = Field(30.0, gt=0, le=3600)
    imap_timeout_seconds: float = Field(30.0, gt=0, le=600)
    # One process reads the mailbox at a time: it holds this lease, renewed well before expiry.
    imap_lease_seconds: float = Field(30.0, ge=3, le=3600)
    inbound_max_bytes: int = Field(26_214_400, ge=1024)

    ticket_create_per_minute: int = Field(30, ge=1)
    comment_create_per_minute: int = Field(30, ge=1)
    max_comments_per_ticket: int = Field(1000, ge=1)
    # Files: where they are kept (by content hash), the per-file cap, and files per ticket.
    attachment_dir: str = "./attachments"
    attachment_max_bytes: int = Field(10 * 1024 * 1024, ge=1)
    max_attachments_per_ticket: int = Field(200, ge=1)
    job_retention_days: int = Field(14, ge=1)
    # How often tickets nobody could take ("waiting: ...") are offered to the staff again.
    routing_retry_seconds: float = Field(60.0, ge=1, le=3600)
    cors_origins: str = ""
    log_level: str = "INFO"

    @field_validator("database_url")
    @classmethod
    def _normalise_database_url(cls, value: str) -> str:
        # Accept the URLs people paste from hosting dashboards; we always use the async drivers.
        for prefix in ("postgres://", "postgresql://", "postgresql+psycopg2://"):
            if value.startswith(prefix):
                return "postgresql+asyncpg://" + value[len(prefix) :]
        if value.startswith("sqlite:///"):
            return "sqlite+aiosqlite:///" + value[len("sqlite:///") :]
        return value

    @field_validator("trusted_proxies")
    @classmethod
    def _check_trusted_proxies(cls, value: str) -> str:
        try:
            parse_networks(value)
        except ValueError as exc:
            raise ValueError(f"TRUSTED_PROXIES: {exc}") from exc
        return value

    @field_validator("algorithm")
    @classmethod
    def _check_algorithm(cls, value: str) -> str:
        value = value.strip().upper()
        if value not in ALLOWED_ALGORITHMS:
            raise ValueError(f"ALGORITHM must be one of {', '.join(ALLOWED_ALGORITHMS)}")
        return value

    @field_validator(
        "gemini_api_key",
        "openai_base_url",
        "smtp_host",
        "secret_key",
        "smtp_user",
        "support_email",
        "imap_host",
    )
    @classmethod
    def _blank_is_none(cls, value: str | None) -> str | None:
        return value.strip() or None if isinstance(value, str) else value

    @model_validator(mode="after")
    def _check_secret_key(self) -> Settings:
        # Only a key that is set is checked here: commands that sign and check no tokens
        # (users, db, eval, ...) run without one. `require_signing_key` guards the rest.
        if self.secret_key is not None:
            # RFC 7518: an HMAC key at least as long as the hash output (32, 48 or 64 bytes).
            needed = max(MIN_SECRET_KEY_BYTES, int(self.algorithm[2:]) // 8)
            if len(self.secret_key.encode()) < needed:
                raise ValueError(f"SECRET_KEY must be at least {needed} bytes for {self.algorithm}")
        return self

    def require_signing_key(self) -> None:
        """Make sure tokens can be signed: the API server and the worker call this at start.

        Without SECRET_KEY, DEBUG gets a random throw-away key (tokens die with the process);
        anything else is a configuration error.
        """
        if self.secret_key is not None:
            return
        if not self.debug:
            raise ConfigurationError(
                "SECRET_KEY is not set. Set it to a random string of at least "
                f"{MIN_SECRET_KEY_BYTES} bytes (for example the output of "
                "`python -c 'import secrets; print(secrets.token_urlsafe(48))'`), "
                "or set DEBUG=true for a throw-away development key."
            )
        self.secret_key = secrets.token_urlsafe(48)
        log.warning("DEBUG is on and SECRET_KEY is unset: using a random development key")

    @model_validator(mode="after")
    def _check_mailbox(self) -> Settings:
        if self.inbound_email == "imap":
            missing = [n.upper() for n in ("imap_host", "imap_user") if not getattr(self, n)]
            if missing:
                raise ValueError(f"INBOUND_EMAIL=imap needs {' and '.join(missing)}")
            if self.imap_done_folder.strip().lower() == self.imap_folder.strip().lower():
                raise ValueError("IMAP_DONE_FOLDER must differ from IMAP_FOLDER")
        return self

    def require_mailbox(self) -> None:
        """Make sure the support mailbox is meant to be read (INBOUND_EMAIL=imap)."""
        if self.inbound_email != "imap":
            raise ConfigurationError(
                "INBOUND_EMAIL is not set to imap, so no mailbox is read. To read the support "
                "mailbox, set INBOUND_EMAIL=imap with IMAP_HOST, IMAP_USER and IMAP_PASSWORD "
                "(and IMAP_PORT, IMAP_TLS if not 993 with TLS)."
            )

    @property
    def jwt_key(self) -> str:
        if self.secret_key is None:
            self.require_signing_key()
        assert self.secret_key is not None  # set, or require_signing_key raised
        return self.secret_key

    @property
    def admin_email_list(self) -> list[str]:
        return [e.lower() for e in _split_csv(self.admin_emails)]

    @property
    def allowed_domain_list(self) -> list[str]:
        return [d.lower().lstrip("@") for d in _split_csv(self.allowed_email_domains)]

    @property
    def trusted_proxy_networks(self) -> list[IPNetwork]:
        return parse_networks(self.trusted_proxies)

    @property
    def cors_origin_list(self) -> list[str]:
        return _split_csv(self.cors_origins)

    @property
    def support_address(self) -> str:
        return self.support_email or self.from_email

    @property
    def resolved_email_backend(self) -> Literal["smtp", "console"]:
        if self.email_backend == "auto":
            return "smtp" if self.smtp_host else "console"
        return self.email_backend

    @property
    def resolved_ai_provider(self) -> Literal["gemini", "openai", "local"]:
        if self.ai_provider != "auto":
            return self.ai_provider
        if self.gemini_api_key:
            return "gemini"
        if self.openai_base_url:
            return "openai"
        return "local"


def load_settings(**overrides: object) -> Settings:
    """Read settings from the environment (and .env), turning mistakes into one clear error."""
    try:
        settings = Settings(**overrides)  # type: ignore[arg-type]
    except ValueError as exc:
        raise ConfigurationError(f"Invalid configuration: {exc}") from exc
    if settings.mongodb_url and "database_url" not in settings.model_fields_set:
        raise ConfigurationError(
            "MONGODB_URL is set but storage is SQL now: this version keeps everything in "
            "SQLite or PostgreSQL. Set DATABASE_URL, for example "
            "DATABASE_URL=postgresql+asyncpg://user:password@host:5432/ticketing for production, "
            f"or unset MONGODB_URL to use the embedded default {DEFAULT_DATABASE_URL}."
        )
    return settings


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    return load_settings()
