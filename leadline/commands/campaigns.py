"""`leadline campaign create|show`: the campaigns of POST /v1/campaigns from the command line,
validated by the same model (template placeholders, filter) and launched by the same actor.
The filter `consent: sms` (the only kind) targets leads whose consent is newer than any STOP
from their number (models/campaigns.py)."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from typing import TYPE_CHECKING

import typer
from pydantic import ValidationError

from leadline.commands.common import (
    BadInput,
    JsonOption,
    emit,
    org_session,
    parse_uuid,
    run_guarded,
)
from leadline.jsondata import JsonObject
from leadline.timespec import parse_moment
from tasks.context import open_runtime

if TYPE_CHECKING:
    from models.campaigns import CampaignSpec, CampaignView

campaign_app = typer.Typer(help="SMS re-engagement campaigns.", no_args_is_help=True)
CLI_ACTOR = "cli"


@campaign_app.command("create")
def campaign_create(
    org: str,
    name: str = typer.Option(..., "--name", help="What the business calls it."),
    template: str = typer.Option(..., "--template", help="The text, e.g. 'Hi {name}, ...'."),
    consent: str = typer.Option("sms", "--consent", help="Who may be texted: sms (the only kind)."),
    created_after: str | None = typer.Option(
        None, "--created-after", help="Only leads created after (ISO 8601, or 7d ago)."
    ),
    status: str | None = typer.Option(None, "--status", help="Only leads in this status."),
    key: str | None = typer.Option(
        None, "--key", help="Idempotency key: the same key again launches nothing new."
    ),
    as_json: bool = JsonOption,
) -> None:
    """Launch a campaign to ORG's leads who consented to texts after any STOP of theirs."""
    org_id = parse_uuid(org, "ORG")
    spec = campaign_spec(name, template, consent, created_after, status)
    idempotency_key = key or f"cli:{uuid.uuid4()}"

    def run() -> None:
        data = create(org_id, idempotency_key, spec)
        text = (
            f"campaign {data['id']} launched"
            if data["created"]
            else f"campaign {data['id']} already exists for this key (nothing new launched)"
        )
        emit(data, as_json, text)

    run_guarded(run, as_json)


def campaign_spec(
    name: str, template: str, consent: str, created_after: str | None, status: str | None
) -> CampaignSpec:
    """The request body POST /v1/campaigns would take, checked the same way."""
    from intake.routes.campaigns import CampaignIn

    now = datetime.now(UTC)
    when = parse_moment(created_after, now, "--created-after") if created_after else None
    body = {
        "name": name,
        "template": template,
        "filter": {"consent": consent, "created_after": when, "status": status},
    }
    try:
        return CampaignIn.model_validate(body).spec()
    except ValidationError as exc:
        raise BadInput(f"{describe(exc)} (see `leadline campaign create --help`)") from None


def describe(exc: ValidationError) -> str:
    """Which options are wrong and why, without the values given."""
    options = {"name": "--name", "template": "--template", "consent": "--consent"}
    problems = []
    for error in exc.errors(include_url=False, include_input=False, include_context=False):
        field = str(error["loc"][-1]) if error["loc"] else ""
        option = options.get(field, f"--{field.replace('_', '-')}")
        problems.append(f"{option}: {error['msg'].removeprefix('Value error, ')}")
    return "; ".join(problems)


def create(org_id: uuid.UUID, key: str, spec: CampaignSpec) -> JsonObject:
    from models.campaigns import create_campaign
    from tasks.after_commit import enqueue_or_defer
    from tasks.campaigns import launch_campaign

    context = open_runtime()
    with org_session(context, org_id) as session:
        created = create_campaign(session, org_id, key, spec, actor=CLI_ACTOR)
    if created.created:
        enqueue_or_defer(launch_campaign, str(org_id), str(created.id))
    elif not created.same_request:
        raise BadInput("--key was already used for a different campaign (choose another key)")
    return {"id": str(created.id), "org_id": str(org_id), "key": key, "created": created.created}


@campaign_app.command("show")
def campaign_show(org: str, campaign: str, as_json: bool = JsonOption) -> None:
    """A campaign's status and counts (targeted, queued, sent, delivered, blocked, ...)."""
    org_id = parse_uuid(org, "ORG")
    campaign_id = parse_uuid(campaign, "CAMPAIGN")

    def run() -> None:
        view = show(org_id, campaign_id)
        counts = ", ".join(f"{name} {value}" for name, value in view["counts"].items())
        emit(view, as_json, f"{view['name']} ({view['status']}): {counts}")

    run_guarded(run, as_json)


def show(org_id: uuid.UUID, campaign_id: uuid.UUID) -> CampaignView:
    from leadline.errors import NotFoundError
    from models.campaigns import campaign_view
    from models.messaging import Campaign

    context = open_runtime()
    with org_session(context, org_id) as session:
        campaign = session.get(Campaign, campaign_id)
        if campaign is None:
            raise NotFoundError(f"no campaign {campaign_id} in {org_id} (check the id printed)")
        return campaign_view(session, campaign)
