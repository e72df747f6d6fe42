"""`leadline endpoint ...` and `leadline webhook ...`: outbound webhook endpoints and replay."""

from __future__ import annotations

import uuid
from collections.abc import Callable, Mapping, Sequence
from typing import TYPE_CHECKING, TypeVar

import typer

from leadline.commands.common import (
    JsonOption,
    emit,
    org_session,
    parse_uuid,
    run_guarded,
    tenant_of,
)
from leadline.commands.progress import progress
from leadline.timespec import parse_moment
from tasks.context import TaskContext, open_runtime

if TYPE_CHECKING:
    from sqlalchemy.orm import Session

    from models.webhook_endpoints import NewSecret
    from models.webhooks import WebhookEndpoint

endpoint_app = typer.Typer(help="Webhook endpoints of an organisation.", no_args_is_help=True)
webhook_app = typer.Typer(help="Webhook deliveries: resend and recover.", no_args_is_help=True)
T = TypeVar("T")


def _split(values: str) -> list[str]:
    return [value.strip() for value in values.split(",") if value.strip()]


def _in_tenant_of_endpoint(
    context: TaskContext, endpoint_id: uuid.UUID, work: Callable[[Session, uuid.UUID], T]
) -> T:
    """Find the endpoint's organisation, then run `work(session, org_id)` scoped to it."""
    from models.webhook_endpoints import endpoint_org

    with tenant_of(context, lambda s: endpoint_org(s, endpoint_id)) as (session, org_id):
        return work(session, org_id)


@endpoint_app.command("add")
def endpoint_add(
    org: str,
    url: str,
    events: str = typer.Option(..., "--events", help="Comma-separated event types."),
    description: str | None = typer.Option(None, help="A note for people."),
    share: str = typer.Option("", help="Lead fields to include: name,phone,email,message,..."),
    as_json: bool = JsonOption,
) -> None:
    """Add an endpoint for ORG. The signing secret is shown once."""
    from models.webhook_endpoints import EndpointSpec, UrlPolicy, create_endpoint, parse_event_types
    from tasks.webhooks.http import current_resolver

    org_id = parse_uuid(org, "ORG")
    spec = EndpointSpec(
        url,
        run_guarded(lambda: parse_event_types(_split(events)), as_json),
        description,
        tuple(_split(share)),
    )

    def run() -> None:
        context = open_runtime()
        policy = UrlPolicy.from_settings(context.settings)
        with org_session(context, org_id) as session:
            cipher = context.keys.cipher(session, org_id)
            new = create_endpoint(session, cipher, spec, policy, resolver=current_resolver())
        emit(
            {"id": str(new.endpoint_id), "org_id": str(org_id), "secret": new.secret},
            as_json,
            f"endpoint {new.endpoint_id} added; signing secret (shown once):\n{new.secret}",
        )

    run_guarded(run, as_json)


@endpoint_app.command("list")
def endpoint_list(org: str, as_json: bool = JsonOption) -> None:
    """List ORG's endpoints (never their secrets)."""
    from models.audit import record_audit
    from models.webhook_endpoints import endpoint_summary, list_endpoints

    org_id = parse_uuid(org, "ORG")

    def run() -> None:
        context = open_runtime()
        with org_session(context, org_id) as session:
            rows = [endpoint_summary(e) for e in list_endpoints(session)]
            record_audit(session, "cli", "endpoint.listed", org_id=org_id, target=str(org_id))
        lines = [
            f"{r['id']}  {'enabled ' if r['enabled'] else 'DISABLED'}  "
            f"{','.join(r['event_types'])}  {r['url']}"
            + (f"  ({r['disabled_reason']})" if r["disabled_reason"] else "")
            for r in rows
        ]
        emit(rows, as_json, "\n".join(lines) or "no endpoints")

    run_guarded(run, as_json)


@endpoint_app.command("rotate-secret")
def endpoint_rotate_secret(endpoint: str, as_json: bool = JsonOption) -> None:
    """New secret for ENDPOINT; the old one stays valid (both sign) for 24 hours."""
    from models.webhook_endpoints import rotate_secret

    endpoint_id = parse_uuid(endpoint, "ENDPOINT")

    def run() -> None:
        context = open_runtime()

        def rotate(session: Session, org_id: uuid.UUID) -> NewSecret:
            cipher = context.keys.cipher(session, org_id)
            return rotate_secret(session, cipher, endpoint_id, context.clock())

        new = _in_tenant_of_endpoint(context, endpoint_id, rotate)
        emit(
            {"id": str(endpoint_id), "secret": new.secret},
            as_json,
            f"new signing secret for {endpoint_id} (shown once; the old one works 24 h more):\n"
            f"{new.secret}",
        )

    run_guarded(run, as_json)


@endpoint_app.command("disable")
def endpoint_disable(
    endpoint: str,
    reason: str = typer.Option("disabled by an operator", help="Why (no personal data)."),
    as_json: bool = JsonOption,
) -> None:
    """Stop deliveries to ENDPOINT; pending ones are cancelled (recoverable)."""
    from tasks.after_commit import AfterCommit
    from tasks.webhooks.lifecycle import disable_endpoint_by_id

    endpoint_id = parse_uuid(endpoint, "ENDPOINT")

    def run() -> None:
        context = open_runtime()
        after_commit = AfterCommit()

        def disable(session: Session, org_id: uuid.UUID) -> WebhookEndpoint:
            cipher = context.keys.cipher(session, org_id)
            now = context.clock()
            return disable_endpoint_by_id(session, cipher, endpoint_id, reason, after_commit, now)

        row = _in_tenant_of_endpoint(context, endpoint_id, disable)
        after_commit.flush()
        emit(
            {"id": str(endpoint_id), "enabled": False, "reason": row.disabled_reason},
            as_json,
            f"endpoint {endpoint_id} disabled: {row.disabled_reason}",
        )

    run_guarded(run, as_json)


@endpoint_app.command("enable")
def endpoint_enable(endpoint: str, as_json: bool = JsonOption) -> None:
    """Resume deliveries to ENDPOINT (use `webhook recover` for the ones it missed)."""
    from models.webhook_endpoints import enable_endpoint

    endpoint_id = parse_uuid(endpoint, "ENDPOINT")

    def run() -> None:
        context = open_runtime()
        _in_tenant_of_endpoint(
            context, endpoint_id, lambda s, _: enable_endpoint(s, endpoint_id, context.clock())
        )
        emit({"id": str(endpoint_id), "enabled": True}, as_json, f"endpoint {endpoint_id} enabled")

    run_guarded(run, as_json)


@endpoint_app.command("delete")
def endpoint_delete(endpoint: str, as_json: bool = JsonOption) -> None:
    """Remove ENDPOINT with its deliveries and attempt log (audited; cannot be undone)."""
    from models.webhook_endpoints import delete_endpoint

    endpoint_id = parse_uuid(endpoint, "ENDPOINT")

    def run() -> None:
        context = open_runtime()
        removed = _in_tenant_of_endpoint(
            context, endpoint_id, lambda s, _: delete_endpoint(s, endpoint_id)
        )
        emit(
            {"id": str(endpoint_id), "deleted": True, "deliveries_deleted": removed},
            as_json,
            f"endpoint {endpoint_id} deleted with {removed} deliveries",
        )

    run_guarded(run, as_json)


@endpoint_app.command("attempts")
def endpoint_attempts(
    endpoint: str,
    limit: int = typer.Option(50, min=1, max=1000, help="How many, newest first."),
    as_json: bool = JsonOption,
) -> None:
    """The attempt log of ENDPOINT: time, duration, status or error class."""
    from models.audit import record_audit
    from tasks.webhooks.operations import list_attempts

    endpoint_id = parse_uuid(endpoint, "ENDPOINT")

    def run() -> None:
        context = open_runtime()

        def read(session: Session, org_id: uuid.UUID) -> Sequence[Mapping[str, object]]:
            rows = list_attempts(session, endpoint_id, limit)
            record_audit(
                session, "cli", "endpoint.attempts_viewed", org_id=org_id, target=str(endpoint_id)
            )
            return rows

        rows = _in_tenant_of_endpoint(context, endpoint_id, read)
        lines = [
            f"{r['started_at']:%Y-%m-%d %H:%M:%S}  {r['outcome']:<14} "
            f"{r['status_code'] or r['error_class'] or '':<14} {r['duration_ms']:>6} ms  "
            f"{r['event_type']}  {r['webhook_id']}  delivery {r['delivery_id']}"
            for r in rows
        ]
        emit(rows, as_json, "\n".join(lines) or "no attempts")

    run_guarded(run, as_json)


@webhook_app.command("resend")
def webhook_resend(delivery: str, as_json: bool = JsonOption) -> None:
    """Send DELIVERY again (same webhook-id) with a fresh retry schedule."""
    from tasks.after_commit import AfterCommit
    from tasks.webhooks.operations import delivery_org, resend_delivery

    delivery_id = parse_uuid(delivery, "DELIVERY_ID")

    def run() -> None:
        context = open_runtime()
        after_commit = AfterCommit()
        with tenant_of(context, lambda s: delivery_org(s, delivery_id)) as (session, _):
            resend_delivery(session, delivery_id, context.clock(), after_commit)
        after_commit.flush()
        emit({"id": str(delivery_id), "state": "pending"}, as_json, f"re-queued {delivery_id}")

    run_guarded(run, as_json)


@webhook_app.command("recover")
def webhook_recover(
    endpoint: str,
    since: str = typer.Option(..., help="Created at or after: 30m, 2h, 7d or an ISO time."),
    until: str | None = typer.Option(None, help="Created before: 1h or an ISO time (default now)."),
    as_json: bool = JsonOption,
) -> None:
    """Re-queue ENDPOINT's failed and cancelled deliveries created in [since, until)."""
    from tasks.after_commit import AfterCommit
    from tasks.webhooks.operations import recover_deliveries

    endpoint_id = parse_uuid(endpoint, "ENDPOINT")

    def run() -> None:
        context = open_runtime()
        after_commit = AfterCommit()
        now = context.clock()
        start = parse_moment(since, now, "--since")
        end = parse_moment(until, now, "--until") if until else now

        def recover(session: Session, _: uuid.UUID) -> int:
            with progress("resetting deliveries") as on_progress:
                return recover_deliveries(
                    session, endpoint_id, start, end, now, after_commit, on_progress=on_progress
                )

        count = _in_tenant_of_endpoint(context, endpoint_id, recover)
        with progress("enqueuing deliveries") as on_progress:
            after_commit.flush(on_progress)
        emit(
            {"endpoint_id": str(endpoint_id), "requeued": count},
            as_json,
            f"re-queued {count} deliveries to {endpoint_id}",
        )

    run_guarded(run, as_json)
