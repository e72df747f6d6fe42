"""`leadline campaign ...`: launch a campaign by SMS or email, show and list them.

The same functions as `POST /v1/campaigns` and `GET /v1/campaigns[/{id}]`; an operator is not
held to the API's launch rate limit."""

from __future__ import annotations

import uuid
from typing import TYPE_CHECKING, Literal, TypedDict

import typer

from leadline.commands.common import (
    BadInput,
    JsonOption,
    emit,
    ensure_org,
    org_session,
    parse_uuid,
    run_guarded,
)
from tasks.context import open_runtime

if TYPE_CHECKING:
    from models.campaigns import CampaignView

campaign_app = typer.Typer(help="Campaigns to leads, by SMS or email.", no_args_is_help=True)
CHANNELS = ("sms", "email")


class Launched(TypedDict):
    id: str
    channel: str
    replayed: bool


def _channel(value: str) -> Literal["sms", "email"]:
    if value == "email":
        return "email"
    if value == "sms":
        return "sms"
    raise BadInput(f"--channel must be one of {', '.join(CHANNELS)} (sms is the default)")


@campaign_app.command("launch")
def campaign_launch(
    org: str,
    name: str = typer.Option(..., "--name", help="What it is called (an email's subject)."),
    template: str = typer.Option(..., "--template", help="Its text, with {name}-style fields."),
    channel: str = typer.Option("sms", "--channel", help="sms (the default) or email."),
    key: str | None = typer.Option(
        None, "--idempotency-key", help="The same key again launches nothing new."
    ),
    as_json: bool = JsonOption,
) -> None:
    """Launch a campaign to ORG's consenting leads (once per --idempotency-key)."""
    from models.campaigns import CampaignSpec, create_campaign
    from models.message_templates import validate_template
    from tasks.after_commit import enqueue_or_defer
    from tasks.campaigns import EMAIL_NOT_SET_UP, launch_campaign, org_sends_email

    org_id = parse_uuid(org, "ORG")

    def run() -> Launched:
        chosen = _channel(channel)
        validate_template("campaign", template)
        spec = CampaignSpec(name, template, {"consent": chosen}, chosen)
        context = open_runtime()
        ensure_org(context, org_id)
        if chosen == "email" and not org_sends_email(context, org_id):
            raise BadInput(EMAIL_NOT_SET_UP)
        with org_session(context, org_id) as session:
            created = create_campaign(session, org_id, key or f"cli:{uuid.uuid4()}", spec, "cli")
        if not created.same_request:
            raise BadInput("that --idempotency-key launched a different campaign (use another)")
        if created.created:
            enqueue_or_defer(launch_campaign, str(org_id), str(created.id))
        return Launched(id=str(created.id), channel=chosen, replayed=not created.created)

    data = run_guarded(run, as_json)
    done = "already launched" if data["replayed"] else "launched"
    emit(data, as_json, f"{data['channel']} campaign {data['id']} {done}")


@campaign_app.command("show")
def campaign_show(org: str, campaign: str, as_json: bool = JsonOption) -> None:
    """One campaign of ORG with its counts (targeted, sent, blocked, ...)."""
    from leadline.errors import NotFoundError
    from models.campaigns import campaign_view
    from models.messaging import Campaign

    org_id, campaign_id = parse_uuid(org, "ORG"), parse_uuid(campaign, "CAMPAIGN")

    def run() -> CampaignView:
        with org_session(open_runtime(), org_id) as session:
            row = session.get(Campaign, campaign_id)
            if row is None:
                raise NotFoundError("no such campaign in this org (`leadline campaign list ORG`)")
            return campaign_view(session, row)

    data = run_guarded(run, as_json)
    counts = ", ".join(f"{name} {count}" for name, count in data["counts"].items())
    emit(data, as_json, f"{data['name']} ({data['channel']}, {data['status']}): {counts}")


@campaign_app.command("list")
def campaign_list(org: str, as_json: bool = JsonOption) -> None:
    """ORG's latest campaigns, newest first, with their counts."""
    from models.campaigns import campaign_view, list_campaigns

    org_id = parse_uuid(org, "ORG")

    def run() -> list[CampaignView]:
        with org_session(open_runtime(), org_id) as session:
            return [campaign_view(session, row) for row in list_campaigns(session, None, 50)]

    rows = run_guarded(run, as_json)
    lines = [f"{r['id']}  {r['channel']:5}  {r['status']:8}  {r['name']}" for r in rows]
    emit(rows, as_json, "\n".join(lines) or "no campaigns")
