"""Settings come from the environment once; a malformed one stops start-up with one clear line."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import app_state, basic_header, job_body
from flask.testing import FlaskClient
from hypothesis import given
from hypothesis import settings as hypothesis_settings
from hypothesis import strategies as st

from service.app import create_app
from service.config import DEFAULT_DATABASE_URL, DEFAULT_MAX_BODY_BYTES, ConfigError, Settings
from service.handlers.registry import handler_plan

JOBHOOKS = Path(sys.executable).parent / "jobhooks"
REPO_ROOT = Path(__file__).resolve().parent.parent


def test_empty_environment_gives_the_documented_defaults() -> None:
    settings = Settings.from_env({})

    assert settings.database_url == DEFAULT_DATABASE_URL
    assert settings.max_body_bytes == DEFAULT_MAX_BODY_BYTES == 64 * 1024
    assert settings.port == 8000
    assert settings.basic_auth == () and settings.api_tokens == ()
    assert settings.allow_unauthenticated is False
    assert settings.has_ingest_credentials is False


@pytest.mark.parametrize(
    ("given", "expected"),
    [
        ("postgres://u:p@db:5432/jobs", "postgresql+psycopg://u:p@db:5432/jobs"),
        ("postgresql://u@db/jobs", "postgresql+psycopg://u@db/jobs"),
        ("postgresql+psycopg://u@db/jobs", "postgresql+psycopg://u@db/jobs"),
        ("sqlite:////var/lib/jobhooks.db", "sqlite:////var/lib/jobhooks.db"),
        ("  ", DEFAULT_DATABASE_URL),
    ],
)
def test_database_url_gets_the_psycopg_driver_spelled_out(given: str, expected: str) -> None:
    assert Settings.from_env({"DATABASE_URL": given}).database_url == expected


def test_several_basic_pairs_are_read_for_rotation() -> None:
    settings = Settings.from_env({"WEBHOOK_BASIC_AUTH": "mx:new-secret, mx-old:old:colon"})

    assert settings.basic_auth == (("mx", "new-secret"), ("mx-old", "old:colon"))
    assert settings.has_ingest_credentials is True


def test_api_tokens_are_a_comma_list() -> None:
    assert Settings.from_env({"API_TOKENS": "one, two ,three"}).api_tokens == (
        "one",
        "two",
        "three",
    )


def test_numbers_and_flags_are_parsed() -> None:
    settings = Settings.from_env(
        {
            "MAX_BODY_BYTES": "1024",
            "HANDLER_RETRY_BASE_SECONDS": "0.25",
            "JOBHOOKS_ALLOW_UNAUTHENTICATED": "1",
            "NOTIFY_URL": "https://product.example/notify",
            "PORT": "5000",
        }
    )

    assert settings.port == 5000

    assert settings.max_body_bytes == 1024
    assert settings.handler_retry_base_seconds == 0.25
    assert settings.allow_unauthenticated is True
    assert settings.notify_url == "https://product.example/notify"


def test_handler_delivery_settings_are_parsed_per_handler() -> None:
    settings = Settings.from_env(
        {
            "HANDLER_RETRY_HORIZON": "36h",
            "HANDLER_MAX_ATTEMPTS": "12",
            "HANDLER_LOOPS": "mfa_prompt=1, alert=3",
            "HANDLER_RATE_LIMITS": "data_ready=2.5",
            "HANDLER_MAX_AGE": "user_action_required=2d",
            "HANDLER_CIRCUIT_FAILURES": "7",
        }
    )

    assert settings.handler_retry_horizon_seconds == 36 * 3600
    assert settings.handler_max_attempts == 12
    assert dict(settings.handler_loops) == {"mfa_prompt": 1, "alert": 3}
    assert dict(settings.handler_rate_limits) == {"data_ready": 2.5}
    # A handler not named keeps its default maximum age.
    assert dict(settings.handler_max_age_seconds) == {
        "mfa_prompt": 900.0,
        "user_action_required": 2 * 86400.0,
    }
    assert settings.handler_circuit_failures == 7
    assert Settings.from_env({}).handler_max_attempts is None


def test_history_retention_is_off_unless_set() -> None:
    assert Settings.from_env({}).history_retention_seconds is None
    assert Settings.from_env({"HISTORY_RETENTION": "90d"}).history_retention_seconds == 90 * 86400


def test_a_handler_setting_naming_no_registered_handler_refuses_to_start() -> None:
    settings = Settings.from_env({"HANDLER_LOOPS": "mfa_prompts=2"})

    with pytest.raises(ConfigError, match="HANDLER_LOOPS: unknown handler 'mfa_prompts'"):
        handler_plan(settings)


@pytest.mark.parametrize(
    ("variable", "value"),
    [
        ("DATABASE_URL", "mysql://u@db/jobs"),
        ("DATABASE_URL", "not a url"),
        ("DATABASE_URL", "postgresql://u@db:notaport/jobs"),
        ("DATABASE_URL", "postgresql://u@[::1/jobs"),
        ("DATABASE_URL", "postgresql://u@db:70000/jobs"),
        ("DATABASE_URL", "sqlite:relative.db"),
        ("WEBHOOK_BASIC_AUTH", "mx"),
        ("WEBHOOK_BASIC_AUTH", "mx:"),
        ("WEBHOOK_BASIC_AUTH", ":secret"),
        ("WEBHOOK_BASIC_AUTH", " , "),
        ("WEBHOOK_SIGNING_SECRETS", "plain-secret"),
        ("WEBHOOK_SIGNING_SECRETS", "whsec_"),
        ("API_TOKENS", ","),
        ("NOTIFY_URL", "ftp://files.example/x"),
        ("NOTIFY_URL", "http://"),
        ("ALERT_URL", "http://[::1"),
        ("MAX_BODY_BYTES", "64k"),
        ("MAX_BODY_BYTES", "0"),
        ("MAX_BODY_BYTES", "-5"),
        ("HANDLER_MAX_ATTEMPTS", "2.5"),
        ("HANDLER_RETRY_BASE_SECONDS", "soon"),
        ("HANDLER_RETRY_BASE_SECONDS", "0"),
        ("HANDLER_RETRY_BASE_SECONDS", "nan"),
        ("HANDLER_RETRY_BASE_SECONDS", "inf"),
        ("WORKER_POLL_SECONDS", "1e400"),
        ("JOBHOOKS_ALLOW_UNAUTHENTICATED", "maybe"),
        ("PORT", "http"),
        ("PORT", "0"),
        ("PORT", "99999"),
        ("HANDLER_RETRY_HORIZON", "a day"),
        ("HANDLER_RETRY_HORIZON", "0h"),
        ("HISTORY_RETENTION", "three months"),
        ("HISTORY_RETENTION", "0d"),
        ("HANDLER_LOOPS", "mfa_prompt"),
        ("HANDLER_LOOPS", "mfa_prompt=0"),
        ("HANDLER_RATE_LIMITS", "alert=-1"),
        ("HANDLER_RATE_LIMITS", "=5"),
        ("HANDLER_MAX_AGE", "mfa_prompt=soon"),
        ("HANDLER_CIRCUIT_FAILURES", "0"),
    ],
)
def test_malformed_setting_raises_one_line_naming_the_variable(variable: str, value: str) -> None:
    with pytest.raises(ConfigError) as raised:
        Settings.from_env({variable: value})

    message = str(raised.value)
    assert message.startswith(f"{variable}:")
    assert "\n" not in message


def test_no_ingest_credentials_refuses_to_start() -> None:
    settings = Settings.from_env({"DATABASE_URL": "sqlite:///unused.db", "API_TOKENS": "t"})

    with pytest.raises(ConfigError) as raised:
        create_app(settings)

    assert "\n" not in str(raised.value)
    assert "JOBHOOKS_ALLOW_UNAUTHENTICATED" in str(raised.value)


def test_allow_unauthenticated_opens_the_webhook_only_without_credentials(
    database_url: str,
) -> None:
    open_settings = Settings.from_env(
        {"DATABASE_URL": database_url, "JOBHOOKS_ALLOW_UNAUTHENTICATED": "1"}
    )
    closed_settings = Settings.from_env(
        {
            "DATABASE_URL": database_url,
            "JOBHOOKS_ALLOW_UNAUTHENTICATED": "1",
            "WEBHOOK_BASIC_AUTH": "mx:secret",
        }
    )

    for settings, expected in ((open_settings, 204), (closed_settings, 401)):
        app = create_app(settings)
        try:
            client: FlaskClient = app.test_client()
            response = client.post("/webhooks/mx/jobs", json={"job": job_body()})
            assert response.status_code == expected
        finally:
            app_state(app).engine.dispose()


def test_configured_app_refuses_wrong_credentials_even_with_allow_flag(
    database_url: str,
) -> None:
    settings = Settings.from_env(
        {
            "DATABASE_URL": database_url,
            "JOBHOOKS_ALLOW_UNAUTHENTICATED": "1",
            "WEBHOOK_BASIC_AUTH": "mx:secret",
        }
    )
    app = create_app(settings)
    try:
        response = app.test_client().post(
            "/webhooks/mx/jobs", json={"job": job_body()}, headers=basic_header("mx", "nope")
        )
        assert response.status_code == 401
    finally:
        app_state(app).engine.dispose()


def test_command_line_reports_a_malformed_setting_in_one_line(tmp_path: Path) -> None:
    environment = {
        "PATH": os.environ.get("PATH", ""),
        "DATABASE_URL": "mysql://u@db/jobs",
        "HOME": str(tmp_path),
    }

    finished = subprocess.run(
        [str(JOBHOOKS), "db", "upgrade"],
        cwd=REPO_ROOT,
        env=environment,
        capture_output=True,
        text=True,
        timeout=60,
    )

    assert finished.returncode != 0
    assert "Traceback" not in finished.stderr
    error_lines = [line for line in finished.stderr.splitlines() if "DATABASE_URL" in line]
    assert len(error_lines) == 1


SETTING_NAMES = (
    "DATABASE_URL",
    "PORT",
    "WEBHOOK_BASIC_AUTH",
    "WEBHOOK_SIGNING_SECRETS",
    "API_TOKENS",
    "NOTIFY_URL",
    "ALERT_URL",
    "MAX_BODY_BYTES",
    "HANDLER_RETRY_BASE_SECONDS",
    "HANDLER_MAX_ATTEMPTS",
    "JOBHOOKS_ALLOW_UNAUTHENTICATED",
)


@hypothesis_settings(max_examples=200, deadline=None)
@given(
    environment=st.dictionaries(
        st.sampled_from(SETTING_NAMES),
        st.text(st.characters(codec="utf-8", exclude_characters="\x00"), max_size=40),
        max_size=4,
    )
)
def test_any_environment_either_parses_or_raises_one_line_config_error(
    environment: dict[str, str],
) -> None:
    try:
        Settings.from_env(environment)
    except ConfigError as error:
        assert "\n" not in str(error)
        assert str(error).split(":", 1)[0] in SETTING_NAMES
