"""`leadline org ...` and `leadline apikey ...`."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import TYPE_CHECKING, TypedDict

import typer

from leadline.commands.common import (
    BadInput,
    JsonOption,
    emit,
    org_session,
    parse_uuid,
    run_guarded,
)
from leadline.commands.tables import format_table
from tasks.context import open_runtime

if TYPE_CHECKING:
    from sqlalchemy.orm import Session

MAX_ORG_NAME = 200
org_app = typer.Typer(help="Organisations (tenants).", no_args_is_help=True)
apikey_app = typer.Typer(help="API keys for the tenant API (/v1).", no_args_is_help=True)


class OrgSummary(TypedDict):
    """`leadline org show`: no personal data."""

    id: str
    name: str
    status: str
    created_at: str | None
    deletion_due_at: str | None
    billing_status: str | None
    settings: dict[str, object]
    counts: dict[str, int]


def _when(value: datetime | None) -> str | None:
    return value.isoformat() if value is not None else None


@org_app.command("create")
def org_create(name: str, as_json: bool = JsonOption) -> None:
    """Create an organisation with its own data key."""
    from models.orgs import create_organization

    if not name.strip() or len(name) > MAX_ORG_NAME:
        raise BadInput(f"NAME must be 1 to {MAX_ORG_NAME} characters (the business's name)")

    def run() -> None:
        context = open_runtime()
        org_id = uuid.uuid4()
        with context.db.tenant(org_id) as session:
            create_organization(session, context.keyring, org_id, name)
        emit({"id": str(org_id), "name": name}, as_json, f"created organisation {org_id}")

    run_guarded(run, as_json)


@org_app.command("list")
def org_list(as_json: bool = JsonOption) -> None:
    """Every organisation: id, name, status, created."""
    from models.orgs import list_organizations

    def run() -> None:
        context = open_runtime()
        with context.db.maintenance() as session:
            rows = [
                {
                    "id": str(org.id),
                    "name": org.name,
                    "status": org.status,
                    "created_at": _when(org.created_at),
                    "deletion_due_at": _when(org.deletion_due_at),
                }
                for org in list_organizations(session)
            ]
        table = [(r["id"], r["name"], r["status"], r["created_at"]) for r in rows]
        text = format_table(("id", "name", "status", "created"), table) if rows else "no orgs"
        emit(rows, as_json, text)

    run_guarded(run, as_json)


@org_app.command("show")
def org_show(org: str, as_json: bool = JsonOption) -> None:
    """ORG's status, settings and counts of leads, keys, numbers (no personal data)."""
    from models.alert_settings import load_org_messaging
    from models.orgs import get_organization, org_counts

    org_id = parse_uuid(org, "ORG")

    def run() -> None:
        context = open_runtime()
        with context.db.tenant(org_id) as session:
            row = get_organization(session, org_id)
            messaging = load_org_messaging(session, org_id, None)
            data: OrgSummary = {
                "id": str(row.id),
                "name": row.name,
                "status": row.status,
                "created_at": _when(row.created_at),
                "deletion_due_at": _when(row.deletion_due_at),
                "billing_status": _billing_status(session),
                "settings": {
                    "program": messaging.program,
                    "contact": messaging.contact,
                    "frequency": messaging.frequency,
                    "autoreply": messaging.autoreply,
                    "custom_templates": sorted(messaging.templates),
                },
                "counts": org_counts(session),
            }
        emit(data, as_json, _show_text(data))

    run_guarded(run, as_json)


def _billing_status(session: Session) -> str | None:
    from sqlalchemy import select

    from models.billing import OrgBilling

    status: str | None = session.scalar(select(OrgBilling.status))
    return status


def _show_text(data: OrgSummary) -> str:
    lines = [f"{data['name']} ({data['id']})", f"status: {data['status']}"]
    if data["deletion_due_at"]:
        lines.append(f"deletion due: {data['deletion_due_at']}")
    lines.append(f"billing: {data['billing_status'] or 'not linked'}")
    lines += [f"{name}: {value}" for name, value in data["settings"].items()]
    lines += [f"{name}: {count}" for name, count in data["counts"].items()]
    return "\n".join(lines)


@apikey_app.command("create")
def apikey_create(
    org: str,
    role: str = typer.Option(
        "owner", "--role", help="ingest (POST /v1/leads only), member, admin or owner."
    ),
    label: str | None = typer.Option(None, "--label", help="A note: what the key is for."),
    as_json: bool = JsonOption,
) -> None:
    """Create an API key for ORG. The key is shown once; only its hash is stored."""
    from models.orgs import create_api_key, parse_role

    org_id = parse_uuid(org, "ORG")

    def run() -> None:
        chosen = parse_role(role)
        context = open_runtime()
        with org_session(context, org_id) as session:
            new_key = create_api_key(session, org_id, role=chosen, label=label)
        emit(
            {
                "id": str(new_key.id),
                "org_id": str(org_id),
                "prefix": new_key.prefix,
                "role": new_key.role,
                "label": new_key.label,
                "key": new_key.key,
            },
            as_json,
            f"API key {new_key.prefix} ({new_key.role}; shown once, store it now):\n{new_key.key}",
        )

    run_guarded(run, as_json)


@apikey_app.command("list")
def apikey_list(org: str, as_json: bool = JsonOption) -> None:
    """ORG's API keys: prefix, role, created, revoked (never the key or its hash)."""
    from models.orgs import list_api_keys

    org_id = parse_uuid(org, "ORG")

    def run() -> None:
        context = open_runtime()
        with org_session(context, org_id) as session:
            rows = [
                {
                    "id": str(key.id),
                    "prefix": key.prefix,
                    "role": key.role,
                    "label": key.label,
                    "created_at": _when(key.created_at),
                    "revoked_at": _when(key.revoked_at),
                    "expires_at": _when(key.expires_at),
                }
                for key in list_api_keys(session)
            ]
        table = [
            (r["prefix"], r["role"], r["created_at"], r["revoked_at"] or r["expires_at"] or "-")
            for r in rows
        ]
        headers = ("prefix", "role", "created", "revoked/expires")
        text = format_table(headers, table) if rows else "no API keys"
        emit(rows, as_json, text)

    run_guarded(run, as_json)


@apikey_app.command("revoke")
def apikey_revoke(prefix: str, as_json: bool = JsonOption) -> None:
    """Revoke the API key with the visible PREFIX."""
    from models.orgs import revoke_api_key

    def run() -> None:
        context = open_runtime()
        with context.db.maintenance() as session:
            org_id = revoke_api_key(session, prefix, context.clock())
        emit(
            {"prefix": prefix, "org_id": str(org_id), "revoked": True}, as_json, f"revoked {prefix}"
        )

    run_guarded(run, as_json)


@org_app.command("settings")
def org_settings(
    org: str,
    default_region: str | None = typer.Option(
        None,
        "--default-region",
        help="Region national phone numbers are read in (US, GB, ...); `none` requires E.164.",
    ),
    quiet_hours: str | None = typer.Option(
        None,
        "--quiet-hours",
        help="Recipients' local hours campaign messages may be sent in, e.g. 09:00-20:00 "
        "(inside 08:00-21:00); `default` for 08:00-21:00.",
    ),
    email_from: str | None = typer.Option(
        None,
        "--email-from",
        help="The address the org's email goes out from (a Postmark sender signature); "
        "`none` stops its email.",
    ),
    as_json: bool = JsonOption,
) -> None:
    """Show ORG's settings, or change them (audited; all or nothing)."""
    from leadline.commands.common import fail, parse_uuid
    from models.normalize import InvalidEmailAddress, InvalidRegion
    from models.orgs import default_region as current_region
    from models.orgs import email_from as current_sender
    from models.orgs import get_organization, set_default_region, set_email_from
    from models.quiet_hours import InvalidQuietHours, org_window, parse_window, set_org_window

    org_id = parse_uuid(org, "ORG")
    clear = default_region is not None and default_region.strip().casefold() == "none"
    reset_window = quiet_hours is not None and quiet_hours.strip().casefold() == "default"
    try:
        window = parse_window(quiet_hours) if quiet_hours is not None and not reset_window else None
    except InvalidQuietHours as exc:
        fail(str(exc), as_json)

    def run() -> None:
        context = open_runtime()
        with context.db.tenant(org_id) as session:
            get_organization(session, org_id)
            if default_region is not None:
                set_default_region(session, org_id, None if clear else default_region)
            if quiet_hours is not None:
                set_org_window(session, org_id, window)
            if email_from is not None:
                set_email_from(session, org_id, _none_clears(email_from))
            shown = OrgSettings(
                org_id=str(org_id),
                default_region=current_region(session, org_id),
                quiet_hours=str(org_window(session, org_id)),
                email_from=current_sender(session, org_id),
            )
        changed = (default_region, quiet_hours, email_from) != (None, None, None)
        emit(shown, as_json, settings_text(shown, changed))

    try:
        run_guarded(run, as_json)
    except InvalidRegion:
        fail(f"unknown region {default_region!r} (use a code such as US or GB, or none)", as_json)
    except InvalidEmailAddress:
        fail("--email-from is not a valid email address (name@example.com, or none)", as_json)


class OrgSettings(TypedDict):
    """`leadline org settings`: the business's own settings (its From address is not a
    person's)."""

    org_id: str
    default_region: str | None
    quiet_hours: str
    email_from: str | None


def _none_clears(value: str) -> str | None:
    """`none` (any case) as an option's value clears the setting."""
    return None if value.strip().casefold() == "none" else value


def settings_text(shown: OrgSettings, changed: bool) -> str:
    region = shown["default_region"] or "none (phone numbers must be +E.164)"
    sender = shown["email_from"] or "none (the organisation sends no email)"
    prefix = "set: " if changed else ""
    return (
        f"{prefix}default region {region}, quiet hours: messages to leads only "
        f"{shown['quiet_hours']} their local time, email from {sender}"
    )
