"""Settings read once from the environment, validated and typed (12-factor)."""

from __future__ import annotations

import base64
import binascii
import ipaddress
import math
import os
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from functools import cached_property, lru_cache
from typing import TypeVar
from urllib.parse import urlsplit

from sqlalchemy.engine import make_url
from sqlalchemy.exc import ArgumentError

from service.jobs.statuses import job_status_code
from service.platform.keys import stretched_key

DEFAULT_DATABASE_URL = "sqlite:///instance/jobhooks.db"
DEFAULT_MAX_BODY_BYTES = 64 * 1024
DEFAULT_PORT = 8000

# Status code -> handler names; only the statuses HANDLERS lists, the rest keep the built-in table.
HandlerPlan = tuple[tuple[int, tuple[str, ...]], ...]
MIN_SECRET_KEY_LENGTH = 32


class ConfigError(ValueError):
    """A setting is missing or malformed; the message is one line naming the variable."""


@dataclass(frozen=True)
class Settings:
    database_url: str = DEFAULT_DATABASE_URL
    port: int = DEFAULT_PORT
    basic_auth: tuple[tuple[str, str], ...] = ()
    oauth_clients: tuple[tuple[str, str], ...] = ()
    oauth_token_ttl_seconds: int = 3600
    auth_failure_limit: int = 30
    auth_failure_window_seconds: int = 60
    # Loopback clients are on this machine already (a local proxy, health checks, operators).
    auth_failure_exempt: tuple[str, ...] = ("127.0.0.1", "::1")
    trusted_proxy_count: int = 0
    # Peers whose X-Forwarded-For is believed (gunicorn reads the same variable): IPs, networks
    # or "*". Anyone else's forwarded headers are ignored.
    forwarded_allow_ips: tuple[str, ...] = ("127.0.0.1", "::1")
    metrics_token: str | None = field(default=None, repr=False)
    signing_secrets: tuple[str, ...] = ()
    api_tokens: tuple[str, ...] = ()
    notify_url: str | None = None
    notify_signing_secret: str | None = None
    alert_url: str | None = None
    max_body_bytes: int = DEFAULT_MAX_BODY_BYTES
    # Every request body must arrive within this; a slow sender cannot hold a web thread longer.
    body_timeout_seconds: float = 10.0
    allow_unauthenticated: bool = False
    handler_retry_base_seconds: float = 5.0
    # Retries go on for this long, as MX's own do (about 24 h); a run is dead when it passes.
    handler_retry_horizon_seconds: float = 24 * 3600.0
    # Unset: bounded by the horizon only. Set: also dead after this many attempts.
    handler_max_attempts: int | None = None
    # Consecutive failures of one handler that open its circuit, and the first cool-down; it
    # doubles while the circuit keeps failing, up to the maximum, so a receiver that comes back
    # is found again within that many seconds, at the cost of one probe request each time.
    handler_circuit_failures: int = 5
    handler_circuit_cooldown_seconds: float = 1.0
    handler_circuit_max_cooldown_seconds: float = 8.0
    # Per handler: claim loops of one worker process it may hold (default: half of them, at
    # least one), deliveries per second across all workers, and the age past which a run is moot.
    handler_loops: tuple[tuple[str, int], ...] = ()
    handler_rate_limits: tuple[tuple[str, float], ...] = ()
    handler_max_age_seconds: tuple[tuple[str, float], ...] = (("mfa_prompt", 900.0),)
    handler_lease_seconds: float = 60.0
    handler_timeout_seconds: float = 10.0
    # SQLite has no NOTIFY: this bounds its handler lag (p99 ~0.1 s + poll on this hardware).
    worker_poll_seconds: float = 0.2
    worker_metrics_port: int = 0
    worker_concurrency: int = 4
    # A job CHALLENGED and a connection-status CHALLENGED of one member within this prompt once.
    prompt_dedup_window_seconds: int = 600
    # OUTAGE_MEMBER_THRESHOLD members of one institution IMPAIRED or DEGRADED within the window
    # raise one institution alert per window.
    outage_window_seconds: int = 900
    outage_member_threshold: int = 10
    handler_plan: HandlerPlan = ()
    # Unset: history stays until `jobhooks purge`. Set: the worker purges what is older at every
    # maintenance pass, so retention costs a few minutes' worth of rows at a time.
    history_retention_seconds: float | None = None
    secret_key_setting: str | None = field(default=None, repr=False)

    @cached_property
    def secret_key(self) -> bytes:
        """SECRET_KEY when set; otherwise derived from the credentials every web process shares."""
        if self.secret_key_setting is not None:
            return self.secret_key_setting.encode()
        return derive_secret_key(self.api_tokens, self.basic_auth)

    @property
    def has_ingest_credentials(self) -> bool:
        return bool(self.basic_auth or self.signing_secrets or self.oauth_clients)

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> Settings:
        env = os.environ if env is None else env
        # Each default is stated once, on its field above; a variable left unset takes it.
        default = cls()
        return cls(
            database_url=_database_url(env.get("DATABASE_URL", "").strip() or default.database_url),
            port=_port(env),
            basic_auth=_credential_pairs("WEBHOOK_BASIC_AUTH", env.get("WEBHOOK_BASIC_AUTH", "")),
            oauth_clients=_credential_pairs(
                "WEBHOOK_OAUTH_CLIENTS", env.get("WEBHOOK_OAUTH_CLIENTS", "")
            ),
            oauth_token_ttl_seconds=_positive_int(
                "WEBHOOK_OAUTH_TOKEN_TTL_SECONDS", env, default.oauth_token_ttl_seconds
            ),
            auth_failure_limit=_positive_int("AUTH_FAILURE_LIMIT", env, default.auth_failure_limit),
            auth_failure_window_seconds=_positive_int(
                "AUTH_FAILURE_WINDOW_SECONDS", env, default.auth_failure_window_seconds
            ),
            auth_failure_exempt=_comma_list(
                "AUTH_FAILURE_EXEMPT",
                env.get("AUTH_FAILURE_EXEMPT", ",".join(default.auth_failure_exempt)),
            ),
            trusted_proxy_count=_non_negative_int("TRUSTED_PROXY_COUNT", env),
            forwarded_allow_ips=_networks(
                "FORWARDED_ALLOW_IPS",
                env.get("FORWARDED_ALLOW_IPS", ",".join(default.forwarded_allow_ips)),
            ),
            metrics_token=env.get("METRICS_TOKEN", "").strip() or None,
            signing_secrets=_signing_secrets(env.get("WEBHOOK_SIGNING_SECRETS", "")),
            api_tokens=_comma_list("API_TOKENS", env.get("API_TOKENS", "")),
            notify_url=_optional_url("NOTIFY_URL", env.get("NOTIFY_URL")),
            notify_signing_secret=_optional_secret(env.get("NOTIFY_SIGNING_SECRET")),
            alert_url=_optional_url("ALERT_URL", env.get("ALERT_URL")),
            max_body_bytes=_positive_int("MAX_BODY_BYTES", env, default.max_body_bytes),
            body_timeout_seconds=_positive_float(
                "BODY_TIMEOUT_SECONDS", env, default.body_timeout_seconds
            ),
            allow_unauthenticated=_flag("JOBHOOKS_ALLOW_UNAUTHENTICATED", env),
            handler_retry_base_seconds=_positive_float(
                "HANDLER_RETRY_BASE_SECONDS", env, default.handler_retry_base_seconds
            ),
            handler_retry_horizon_seconds=_age_seconds(
                "HANDLER_RETRY_HORIZON", env, default.handler_retry_horizon_seconds
            ),
            handler_max_attempts=_optional_positive_int("HANDLER_MAX_ATTEMPTS", env),
            handler_circuit_failures=_positive_int(
                "HANDLER_CIRCUIT_FAILURES", env, default.handler_circuit_failures
            ),
            handler_circuit_cooldown_seconds=_positive_float(
                "HANDLER_CIRCUIT_COOLDOWN_SECONDS", env, default.handler_circuit_cooldown_seconds
            ),
            handler_circuit_max_cooldown_seconds=_positive_float(
                "HANDLER_CIRCUIT_MAX_COOLDOWN_SECONDS",
                env,
                default.handler_circuit_max_cooldown_seconds,
            ),
            handler_loops=_handler_values("HANDLER_LOOPS", env, _whole_number, ()),
            handler_rate_limits=_handler_values("HANDLER_RATE_LIMITS", env, _rate, ()),
            handler_max_age_seconds=_handler_values(
                "HANDLER_MAX_AGE", env, _age, default.handler_max_age_seconds
            ),
            handler_lease_seconds=_positive_float(
                "HANDLER_LEASE_SECONDS", env, default.handler_lease_seconds
            ),
            handler_timeout_seconds=_positive_float(
                "HANDLER_TIMEOUT_SECONDS", env, default.handler_timeout_seconds
            ),
            worker_poll_seconds=_positive_float(
                "WORKER_POLL_SECONDS", env, default.worker_poll_seconds
            ),
            worker_metrics_port=_non_negative_int("WORKER_METRICS_PORT", env),
            worker_concurrency=_positive_int("WORKER_CONCURRENCY", env, default.worker_concurrency),
            prompt_dedup_window_seconds=_positive_int(
                "PROMPT_DEDUP_WINDOW_SECONDS", env, default.prompt_dedup_window_seconds
            ),
            outage_window_seconds=_positive_int(
                "OUTAGE_WINDOW_SECONDS", env, default.outage_window_seconds
            ),
            outage_member_threshold=_positive_int(
                "OUTAGE_MEMBER_THRESHOLD", env, default.outage_member_threshold
            ),
            handler_plan=_handler_plan(env.get("HANDLERS", "")),
            history_retention_seconds=_age_seconds("HISTORY_RETENTION", env, 0.0) or None,
            secret_key_setting=_optional_secret_key(env.get("SECRET_KEY")),
        )

    def __post_init__(self) -> None:
        if self.notify_signing_secret in self.signing_secrets:
            raise ConfigError(
                "NOTIFY_SIGNING_SECRET: must differ from every WEBHOOK_SIGNING_SECRETS secret "
                "(a notification signed with an inbound secret would be accepted as MX's)"
            )

    def require_ingest_credentials(self) -> None:
        """Refuse to serve an open webhook URL unless the operator asked for it explicitly."""
        if not self.has_ingest_credentials and not self.allow_unauthenticated:
            raise ConfigError(
                "no ingest credentials: set WEBHOOK_BASIC_AUTH, WEBHOOK_OAUTH_CLIENTS or "
                "WEBHOOK_SIGNING_SECRETS "
                "(or JOBHOOKS_ALLOW_UNAUTHENTICATED=1 for local development only)"
            )


@lru_cache(maxsize=8)
def derive_secret_key(
    api_tokens: tuple[str, ...], basic_auth: tuple[tuple[str, str], ...]
) -> bytes:
    """A stable key from the configured credentials, so processes agree without sharing memory.

    Sorted, so the order the tokens are listed in does not matter. Rotating a token changes the
    key; set SECRET_KEY to keep signed values valid across rotations.
    """
    material = "\x1e".join(
        sorted(f"token\x1f{token}" for token in api_tokens)
        + sorted(f"basic\x1f{user}\x1f{password}" for user, password in basic_auth)
    )
    return stretched_key(material, b"jobhooks/secret-key/v1")


def _optional_secret_key(raw: str | None) -> str | None:
    if raw is None or not raw.strip():
        return None
    if len(raw.strip()) < MIN_SECRET_KEY_LENGTH:
        raise ConfigError(f"SECRET_KEY: must be at least {MIN_SECRET_KEY_LENGTH} characters long")
    return raw.strip()


def _handler_plan(raw: str) -> HandlerPlan:
    """HANDLERS="CHALLENGED=mfa_prompt,my_handler;HALTED=alert;COMPLETED=" (names or codes).

    Names are checked against the handler registry at start-up, not here: config knows no handlers.
    """
    plan: dict[int, tuple[str, ...]] = {}
    for entry in (item.strip() for item in raw.split(";")):
        if not entry:
            continue
        status, sep, names = entry.partition("=")
        if not sep:
            raise ConfigError(f"HANDLERS: {entry!r} must be STATUS=handler[,handler...]")
        try:
            code = job_status_code(status)
        except ValueError as error:
            raise ConfigError(f"HANDLERS: {error}") from None
        if code in plan:
            raise ConfigError(f"HANDLERS: status {status.strip()!r} is listed twice")
        plan[code] = tuple(name.strip() for name in names.split(",") if name.strip())
    return tuple(plan.items())


def _database_url(url: str) -> str:
    scheme = url.split(":", 1)[0]
    # PaaS add-ons hand out postgres:// URLs; SQLAlchemy needs the driver spelled out.
    if scheme in ("postgres", "postgresql"):
        url = "postgresql+psycopg:" + url.split(":", 1)[1]
    elif scheme not in ("sqlite", "postgresql+psycopg"):
        raise ConfigError(
            f"DATABASE_URL: unsupported scheme {scheme!r} (use sqlite:/// or postgresql+psycopg://)"
        )
    try:
        port = make_url(url).port
    except (ArgumentError, ValueError):
        port = -1  # the parser's message may quote the password, so it is not repeated
    if port is not None and not 0 < port < 65536:
        raise ConfigError("DATABASE_URL: malformed URL (check its form, host and port)")
    return url


def _credential_pairs(name: str, raw: str) -> tuple[tuple[str, str], ...]:
    pairs = []
    for item in _comma_list(name, raw):
        user, sep, password = item.partition(":")
        if not sep or not user or not password:
            raise ConfigError(f"{name}: each entry must be id:secret (entries separated by ',')")
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
    try:
        parts = urlsplit(raw.strip())
    except ValueError:  # an unclosed IPv6 bracket, for one
        parts = urlsplit("")
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


def _non_negative_int(name: str, env: Mapping[str, str]) -> int:
    raw = env.get(name, "").strip() or "0"
    if not raw.isdigit():
        raise ConfigError(f"{name}: must be a whole number >= 0, got {raw!r}")
    return int(raw)


def _positive_float(name: str, env: Mapping[str, str], default: float) -> float:
    raw = env.get(name, "").strip()
    if not raw:
        return default
    try:
        value = float(raw)
    except ValueError:
        raise ConfigError(f"{name}: must be a number, got {raw!r}") from None
    # float() also reads "inf" and "nan", which no timer or backoff can use.
    if not math.isfinite(value):
        raise ConfigError(f"{name}: must be a finite number, got {raw!r}")
    if not value > 0:
        raise ConfigError(f"{name}: must be greater than zero, got {raw}")
    return value


def _port(env: Mapping[str, str]) -> int:
    # gunicorn binds PORT itself; checking it here lets on_starting fail with one line, not a trace.
    raw = env.get("PORT", "").strip()
    if not raw:
        return DEFAULT_PORT
    if not (raw.isascii() and raw.isdigit() and 0 < int(raw) < 65536):
        raise ConfigError(f"PORT: must be a TCP port number from 1 to 65535, got {raw!r}")
    return int(raw)


def _networks(name: str, raw: str) -> tuple[str, ...]:
    items = _comma_list(name, raw)
    for item in items:
        if item == "*":
            continue
        try:
            ipaddress.ip_network(item, strict=False)
        except ValueError:
            raise ConfigError(f"{name}: {item!r} is not an IP address or network") from None
    return items


def _optional_positive_int(name: str, env: Mapping[str, str]) -> int | None:
    return _positive_int(name, env, 0) or None


AGE_PATTERN = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([smhd]?)\s*$")
AGE_UNIT_SECONDS = {"": 1, "s": 1, "m": 60, "h": 3600, "d": 86400}


def _age(raw: str) -> float:
    """'24h', '15m', '90s', '2d' or plain seconds."""
    match = AGE_PATTERN.match(raw)
    if not match or float(match.group(1)) <= 0:
        raise ValueError(f"must be a duration like 15m, 24h or 2d, got {raw.strip()!r}")
    return float(match.group(1)) * AGE_UNIT_SECONDS[match.group(2)]


def _age_seconds(name: str, env: Mapping[str, str], default: float) -> float:
    raw = env.get(name, "").strip()
    if not raw:
        return default
    try:
        return _age(raw)
    except ValueError as error:
        raise ConfigError(f"{name}: {error}") from None


def _whole_number(raw: str) -> int:
    if not raw.strip().isdigit() or int(raw) < 1:
        raise ValueError(f"must be a whole number of at least 1, got {raw.strip()!r}")
    return int(raw)


def _rate(raw: str) -> float:
    try:
        value = float(raw)
    except ValueError:
        value = math.nan
    if not math.isfinite(value) or value <= 0:
        raise ValueError(f"must be a number of deliveries per second above 0, got {raw.strip()!r}")
    return value


Value = TypeVar("Value")


def _handler_values(
    name: str,
    env: Mapping[str, str],
    parse: Callable[[str], Value],
    default: tuple[tuple[str, Value], ...],
) -> tuple[tuple[str, Value], ...]:
    """NAME="mfa_prompt=2,alert=1": a value per handler; unset keeps the default, and handlers
    not named keep theirs. Names are checked against the registry at start-up, not here."""
    raw = env.get(name, "")
    if not raw.strip():
        return default
    values = dict(default)
    for entry in (item.strip() for item in raw.split(",") if item.strip()):
        handler, sep, value = entry.partition("=")
        if not sep or not handler.strip():
            raise ConfigError(f"{name}: {entry!r} must be handler=value")
        try:
            values[handler.strip()] = parse(value)
        except ValueError as error:
            raise ConfigError(f"{name}: {handler.strip()}: {error}") from None
    return tuple(values.items())


def _flag(name: str, env: Mapping[str, str]) -> bool:
    raw = env.get(name, "").strip().lower()
    if raw in ("", "0", "false", "no", "off"):
        return False
    if raw in ("1", "true", "yes", "on"):
        return True
    raise ConfigError(f"{name}: must be 1 or 0, got {raw!r}")
