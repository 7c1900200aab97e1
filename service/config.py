"""Settings read once from the environment, validated and typed (12-factor)."""

from __future__ import annotations

import base64
import binascii
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from urllib.parse import urlsplit

DEFAULT_DATABASE_URL = "sqlite:///instance/jobhooks.db"
DEFAULT_MAX_BODY_BYTES = 64 * 1024


class ConfigError(ValueError):
    """A setting is missing or malformed; the message is one line naming the variable."""


@dataclass(frozen=True)
class Settings:
    database_url: str = DEFAULT_DATABASE_URL
    basic_auth: tuple[tuple[str, str], ...] = ()
    signing_secrets: tuple[str, ...] = ()
    api_tokens: tuple[str, ...] = ()
    notify_url: str | None = None
    notify_signing_secret: str | None = None
    alert_url: str | None = None
    max_body_bytes: int = DEFAULT_MAX_BODY_BYTES
    allow_unauthenticated: bool = False
    handler_retry_base_seconds: float = 5.0
    handler_max_attempts: int = 8
    handler_lease_seconds: float = 60.0
    handler_timeout_seconds: float = 10.0
    worker_poll_seconds: float = 0.5
    extra: Mapping[str, str] = field(default_factory=dict)

    @property
    def has_ingest_credentials(self) -> bool:
        return bool(self.basic_auth or self.signing_secrets)

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> Settings:
        env = os.environ if env is None else env
        return cls(
            database_url=_database_url(env.get("DATABASE_URL", "").strip() or DEFAULT_DATABASE_URL),
            basic_auth=_basic_pairs(env.get("WEBHOOK_BASIC_AUTH", "")),
            signing_secrets=_signing_secrets(env.get("WEBHOOK_SIGNING_SECRETS", "")),
            api_tokens=_comma_list("API_TOKENS", env.get("API_TOKENS", "")),
            notify_url=_optional_url("NOTIFY_URL", env.get("NOTIFY_URL")),
            notify_signing_secret=_optional_secret(env.get("NOTIFY_SIGNING_SECRET")),
            alert_url=_optional_url("ALERT_URL", env.get("ALERT_URL")),
            max_body_bytes=_positive_int("MAX_BODY_BYTES", env, DEFAULT_MAX_BODY_BYTES),
            allow_unauthenticated=_flag("JOBHOOKS_ALLOW_UNAUTHENTICATED", env),
            handler_retry_base_seconds=_positive_float("HANDLER_RETRY_BASE_SECONDS", env, 5.0),
            handler_max_attempts=_positive_int("HANDLER_MAX_ATTEMPTS", env, 8),
            handler_lease_seconds=_positive_float("HANDLER_LEASE_SECONDS", env, 60.0),
            handler_timeout_seconds=_positive_float("HANDLER_TIMEOUT_SECONDS", env, 10.0),
            worker_poll_seconds=_positive_float("WORKER_POLL_SECONDS", env, 0.5),
            extra={k: v for k, v in env.items() if k.startswith("JOBHOOKS_")},
        )

    def require_ingest_credentials(self) -> None:
        """Refuse to serve an open webhook URL unless the operator asked for it explicitly."""
        if not self.has_ingest_credentials and not self.allow_unauthenticated:
            raise ConfigError(
                "no ingest credentials: set WEBHOOK_BASIC_AUTH or WEBHOOK_SIGNING_SECRETS "
                "(or JOBHOOKS_ALLOW_UNAUTHENTICATED=1 for local development only)"
            )


def _database_url(url: str) -> str:
    scheme = url.split(":", 1)[0]
    # PaaS add-ons hand out postgres:// URLs; SQLAlchemy needs the driver spelled out.
    if scheme in ("postgres", "postgresql"):
        return "postgresql+psycopg:" + url.split(":", 1)[1]
    if scheme not in ("sqlite", "postgresql+psycopg"):
        raise ConfigError(
            f"DATABASE_URL: unsupported scheme {scheme!r} (use sqlite:/// or postgresql+psycopg://)"
        )
    return url


def _basic_pairs(raw: str) -> tuple[tuple[str, str], ...]:
    pairs = []
    for item in _comma_list("WEBHOOK_BASIC_AUTH", raw):
        user, sep, password = item.partition(":")
        if not sep or not user or not password:
            raise ConfigError(
                "WEBHOOK_BASIC_AUTH: each entry must be user:password (entries separated by ',')"
            )
        pairs.append((user, password))
    return tuple(pairs)


def _signing_secrets(raw: str) -> tuple[str, ...]:
    secrets = tuple(raw.split())
    for secret in secrets:
        _check_whsec("WEBHOOK_SIGNING_SECRETS", secret)
    return secrets


def _optional_secret(raw: str | None) -> str | None:
    if raw is None or not raw.strip():
        return None
    return _check_whsec("NOTIFY_SIGNING_SECRET", raw.strip())


def _check_whsec(name: str, secret: str) -> str:
    body = secret.removeprefix("whsec_")
    try:
        key = base64.b64decode(body + "==", validate=False) if secret.startswith("whsec_") else b""
    except (binascii.Error, ValueError):
        key = b""
    if not key:
        raise ConfigError(f"{name}: each secret must look like whsec_<base64 key>")
    return secret


def _comma_list(name: str, raw: str) -> tuple[str, ...]:
    items = tuple(item.strip() for item in raw.split(",") if item.strip())
    if raw.strip() and not items:
        raise ConfigError(f"{name}: no values found")
    return items


def _optional_url(name: str, raw: str | None) -> str | None:
    if raw is None or not raw.strip():
        return None
    parts = urlsplit(raw.strip())
    if parts.scheme not in ("http", "https") or not parts.netloc:
        raise ConfigError(f"{name}: must be an http:// or https:// URL")
    return raw.strip()


def _positive_int(name: str, env: Mapping[str, str], default: int) -> int:
    raw = env.get(name, "").strip()
    if not raw:
        return default
    try:
        value = int(raw)
    except ValueError:
        raise ConfigError(f"{name}: must be a whole number, got {raw!r}") from None
    if value <= 0:
        raise ConfigError(f"{name}: must be greater than zero, got {value}")
    return value


def _positive_float(name: str, env: Mapping[str, str], default: float) -> float:
    raw = env.get(name, "").strip()
    if not raw:
        return default
    try:
        value = float(raw)
    except ValueError:
        raise ConfigError(f"{name}: must be a number, got {raw!r}") from None
    if not value > 0:
        raise ConfigError(f"{name}: must be greater than zero, got {raw}")
    return value


def _flag(name: str, env: Mapping[str, str]) -> bool:
    raw = env.get(name, "").strip().lower()
    if raw in ("", "0", "false", "no", "off"):
        return False
    if raw in ("1", "true", "yes", "on"):
        return True
    raise ConfigError(f"{name}: must be 1 or 0, got {raw!r}")
