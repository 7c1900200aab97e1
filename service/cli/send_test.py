"""`jobhooks send-test URL`: POST a realistic MX-shaped callback to a deployment."""

from __future__ import annotations

import sys

import click

from service.cli.samples import DEFAULT_STATUS, sample, send
from service.webhooks.kinds import WebhookKind


@click.command("send-test")
@click.argument("url")
@click.option(
    "--kind",
    type=click.Choice([kind.value for kind in WebhookKind]),
    default="jobs",
    show_default=True,
    help="which MX webhook to send (the endpoint under /webhooks/mx/ of the same name takes it)",
)
@click.option(
    "--status",
    "status",
    default=None,
    help="job status (jobs, default CHALLENGED), connection status (connection-status, default "
    "CHALLENGED; members, default CONNECTED), or data type (data-updates, default AGGREGATION); "
    "a name or a code",
)
@click.option("--basic", default=None, help="user:password for HTTP Basic")
@click.option("--sign", "signing_secret", default=None, help="whsec_... to sign the request")
def send_test(
    url: str, kind: str, status: str | None, basic: str | None, signing_secret: str | None
) -> None:
    """POST a realistic MX-style callback to URL and show the answer."""
    webhook = WebhookKind(kind)
    chosen = status or DEFAULT_STATUS[webhook]
    try:
        document, subject = sample(webhook, chosen)
    except ValueError as error:
        raise click.BadParameter(str(error), param_hint="--status") from None
    credentials = None
    if basic is not None:
        user, sep, password = basic.partition(":")
        if not sep:
            raise click.BadParameter("use user:password", param_hint="--basic")
        credentials = (user, password)
    sent = send(url, document, subject, basic=credentials, signing_secret=signing_secret)
    noun = "job" if webhook is WebhookKind.JOBS else f"{kind} for member"
    click.echo(f"sent {noun} {sent.subject_guid} ({chosen}) -> HTTP {sent.status_code}")
    if sent.response_text:
        click.echo(sent.response_text)
    if not 200 <= sent.status_code < 300:
        sys.exit(1)
