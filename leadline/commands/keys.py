"""`leadline keys ...`: master-key and data-key rotation."""

from __future__ import annotations

import typer

from leadline.commands.common import (
    JsonOption,
    emit,
    org_session,
    parse_uuid,
    run_guarded,
)
from tasks.context import open_runtime

keys_app = typer.Typer(help="Key rotation.", no_args_is_help=True)


@keys_app.command("rotate-master")
def rotate_master_cmd(as_json: bool = JsonOption) -> None:
    """Re-wrap every data key under the primary (first) master key; data is untouched."""
    from models.audit import record_audit
    from models.keys import rotate_master

    def run() -> None:
        context = open_runtime()
        with context.db.maintenance() as session:
            count = rotate_master(session, context.keyring)
            record_audit(
                session,
                "cli",
                "keys.rotate_master",
                details={"rewrapped": count, "primary": context.keyring.primary_id},
            )
        emit(
            {"rewrapped": count, "primary": context.keyring.primary_id},
            as_json,
            f"re-wrapped {count} data keys under {context.keyring.primary_id}",
        )

    run_guarded(run, as_json)


@keys_app.command("rotate-org")
def rotate_org_cmd(org: str, as_json: bool = JsonOption) -> None:
    """Add a new data-key version for ORG; new data uses it, old data stays readable."""
    from models.audit import record_audit
    from models.keys import rotate_org_key

    org_id = parse_uuid(org, "ORG")

    def run() -> None:
        context = open_runtime()
        with org_session(context, org_id) as session:
            version = rotate_org_key(session, context.keyring, org_id)
            record_audit(
                session, "cli", "keys.rotate_org", org_id=org_id, details={"version": version}
            )
        context.keys.forget(org_id)
        emit(
            {"org_id": str(org_id), "version": version},
            as_json,
            f"organisation {org_id} now encrypts with data key version {version}",
        )

    run_guarded(run, as_json)
