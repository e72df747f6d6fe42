"""`leadline org ...` and `leadline apikey ...`."""

from __future__ import annotations

import uuid

import typer

from leadline.commands.common import JsonOption, emit, open_runtime, run_guarded

org_app = typer.Typer(help="Organisations (tenants).", no_args_is_help=True)
apikey_app = typer.Typer(help="API keys for POST /v1/leads.", no_args_is_help=True)


@org_app.command("create")
def org_create(name: str, as_json: bool = JsonOption) -> None:
    """Create an organisation with its own data key."""
    from models.orgs import create_organization

    def run() -> None:
        context = open_runtime()
        org_id = uuid.uuid4()
        with context.db.tenant(org_id) as session:
            create_organization(session, context.keyring, org_id, name)
        emit({"id": str(org_id), "name": name}, as_json, f"created organisation {org_id}")

    run_guarded(run, as_json)


@apikey_app.command("create")
def apikey_create(org: str, as_json: bool = JsonOption) -> None:
    """Create an API key for ORG. The key is shown once; only its hash is stored."""
    from leadline.commands.common import parse_uuid
    from models.orgs import create_api_key

    org_id = parse_uuid(org, "ORG")

    def run() -> None:
        context = open_runtime()
        with context.db.tenant(org_id) as session:
            new_key = create_api_key(session, org_id)
        emit(
            {
                "id": str(new_key.id),
                "org_id": str(org_id),
                "prefix": new_key.prefix,
                "key": new_key.key,
            },
            as_json,
            f"API key {new_key.prefix} (shown once, store it now):\n{new_key.key}",
        )

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
    as_json: bool = JsonOption,
) -> None:
    """Show ORG's settings, or change them (audited)."""
    from leadline.commands.common import fail, parse_uuid
    from leadline.errors import NotFoundError
    from models.normalize import InvalidRegion
    from models.orgs import default_region as current_region
    from models.orgs import set_default_region
    from models.tables import Organization

    org_id = parse_uuid(org, "ORG")
    clear = default_region is not None and default_region.strip().casefold() == "none"

    def run() -> None:
        context = open_runtime()
        with context.db.tenant(org_id) as session:
            if default_region is None:
                if session.get(Organization, org_id) is None:
                    raise NotFoundError("no such organisation")
                region = current_region(session, org_id)
            else:
                region = set_default_region(session, org_id, None if clear else default_region)
        changed = "" if default_region is None else "set: "
        emit(
            {"org_id": str(org_id), "default_region": region},
            as_json,
            f"{changed}default region {region or 'none (phone numbers must be +E.164)'}",
        )

    try:
        run_guarded(run, as_json)
    except InvalidRegion:
        fail(f"unknown region {default_region!r} (use a code such as US or GB, or none)", as_json)
