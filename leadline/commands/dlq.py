"""`leadline dlq ...`: dead letters (messages the workers gave up on) and the other lists of
things that need a person (attention lists registered by other modules)."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from datetime import datetime
from typing import TYPE_CHECKING

import typer

from leadline.commands.common import JsonOption, emit, fail, run_guarded
from leadline.commands.tables import format_table
from leadline.jsondata import JsonObject
from leadline.timespec import format_age, parse_moment
from tasks.context import TaskContext, open_runtime

if TYPE_CHECKING:
    from sqlalchemy.orm import Session

    from tasks.attention import Listing
    from workers.brokers import LeadlineBroker
    from workers.dlq import DeadLetterResult

    # replay_dead_letter, purge_dead_letter: (session, broker, key, operator, now) -> result
    DeadLetterAction = Callable[[Session, LeadlineBroker, str, str, datetime], DeadLetterResult]

dlq_app = typer.Typer(help="Dead letters: list, show, replay, purge.", no_args_is_help=True)
OPERATOR = "operator:cli"
STATES = ("dead", "replayed", "purged")


@dlq_app.command("list")
def dlq_list(
    queue: str | None = typer.Option(None, help="Only this queue."),
    actor: str | None = typer.Option(None, help="Only this actor."),
    since: str | None = typer.Option(None, help="Failed since: 30m, 2h, 7d or an ISO time."),
    state: str = typer.Option("dead", help="dead, replayed, purged or all."),
    limit: int = typer.Option(200, min=1, max=10_000),
    as_json: bool = JsonOption,
) -> None:
    """Dead letters (newest first), then the attention lists."""
    from tasks.attention import read_attention
    from workers.dlq import DeadLetterFilter, dead_letter_summary, list_dead_letters

    def run() -> None:
        context = open_runtime()
        now = context.clock()
        states = STATES if state == "all" else (state,)
        if not set(states) <= set(STATES):
            fail(f"--state must be one of {', '.join(STATES)} or all", as_json)
        where = DeadLetterFilter(
            queue=queue, actor=actor, since=_moment(since, now), states=states, limit=limit
        )
        with context.db.maintenance() as session:
            rows = [dead_letter_summary(r, now) for r in list_dead_letters(session, where)]
        listings = read_attention(context.db)
        attention = [listing.as_dict() for listing in listings]
        emit(
            {"dead_letters": rows, "attention": attention},
            as_json,
            dead_letters_text(rows, listings),
        )

    run_guarded(run, as_json)


def _moment(value: str | None, now: datetime) -> datetime | None:
    return parse_moment(value, now, "--since") if value else None


def dead_letters_text(rows: Sequence[JsonObject], listings: list[Listing]) -> str:
    headers = ("id", "actor", "error", "age", "retries", "state")
    table = [(r["id"], r["actor"], r["error"], _age(r), r["retries"], r["state"]) for r in rows]
    parts = [format_table(headers, table) if rows else "no dead letters"]
    for listing in listings:
        parts.append(f"\n{listing.name}: " + _listing_text(listing))
    return "\n".join(parts)


def _age(summary: JsonObject) -> str:
    """`age_seconds` of a dead-letter summary as `5m`; the summary always holds an int."""
    seconds = summary["age_seconds"]
    return format_age(seconds) if isinstance(seconds, int) else str(seconds)


def _listing_text(listing: Listing) -> str:
    if listing.error:
        return listing.error
    if not listing.rows:
        return "nothing"
    headers = listing.columns
    rows = [[row.get(h) for h in headers] for row in listing.rows]
    return f"{len(listing.rows)}\n" + format_table(headers, rows)


@dlq_app.command("show")
def dlq_show(
    key: str = typer.Argument(..., help="Dead letter id or message id."), as_json: bool = JsonOption
) -> None:
    """One dead letter in full: args (ids), redacted error and traceback, history."""
    from workers.dlq import dead_letter_detail, find_dead_letter

    def run() -> None:
        context = open_runtime()
        with context.db.maintenance() as session:
            detail = dead_letter_detail(find_dead_letter(session, key), context.clock())
        text = "\n".join(f"{k}: {v}" for k, v in detail.items() if k != "traceback")
        emit(detail, as_json, text + f"\ntraceback:\n{detail['traceback'] or '(none)'}")

    run_guarded(run, as_json)


@dlq_app.command("replay")
def dlq_replay(
    key: str | None = typer.Argument(None, help="Dead letter id or message id."),
    actor: str | None = typer.Option(None, help="Replay every dead letter of this actor."),
    all_: bool = typer.Option(False, "--all", help="Replay every dead letter."),
    limit: int = typer.Option(100, min=1, max=10_000, help="At most this many (bulk)."),
    as_json: bool = JsonOption,
) -> None:
    """Re-enqueue dead messages under their original ids. An entry replays once."""
    from workers.dlq import replay_dead_letter

    _one_selector(as_json, key=key, actor=actor, all_=all_)

    def run() -> None:
        context = open_runtime()
        keys = [key] if key else _dead_ids(context, actor=actor, before=None, limit=limit)
        outcomes = [_apply(context, replay_dead_letter, k) for k in keys]
        _report(outcomes, "replayed", "replay", as_json)

    run_guarded(run, as_json)


@dlq_app.command("purge")
def dlq_purge(
    key: str | None = typer.Argument(None, help="Dead letter id or message id."),
    older_than: str | None = typer.Option(None, help="Purge entries failed before: 7d, ISO..."),
    limit: int = typer.Option(1000, min=1, max=100_000, help="At most this many (bulk)."),
    as_json: bool = JsonOption,
) -> None:
    """Give up on dead messages for good (removed from the broker; the row keeps a tombstone)."""
    from workers.dlq import purge_dead_letter

    _one_selector(as_json, key=key, older_than=older_than)

    def run() -> None:
        context = open_runtime()
        if key:
            keys = [key]
        else:
            assert older_than is not None
            cutoff = parse_moment(older_than, context.clock(), "--older-than")
            keys = _dead_ids(context, actor=None, before=cutoff, limit=limit, any_live=True)
        outcomes = [_apply(context, purge_dead_letter, k) for k in keys]
        _report(outcomes, "purged", "purge", as_json)

    run_guarded(run, as_json)


def _one_selector(as_json: bool, **selectors: object) -> None:
    chosen = [name for name, value in selectors.items() if value]
    if len(chosen) != 1:
        names = ", ".join(
            "ID" if n == "key" else "--" + n.rstrip("_").replace("_", "-") for n in selectors
        )
        fail(f"give exactly one of {names} (see --help)", as_json)


def _dead_ids(
    context: TaskContext,
    *,
    actor: str | None,
    before: datetime | None,
    limit: int,
    any_live: bool = False,
) -> list[str]:
    from workers.dlq import DeadLetterFilter, list_dead_letters

    states = ("dead", "replayed") if any_live else ("dead",)
    where = DeadLetterFilter(actor=actor, before=before, states=states, limit=limit)
    with context.db.maintenance() as session:
        return [str(row.id) for row in list_dead_letters(session, where)]


def _apply(context: TaskContext, action: DeadLetterAction, key: str) -> DeadLetterResult:
    """One transaction per entry: a failure stops the run without undoing earlier entries."""
    from workers.brokers import current_broker

    with context.db.maintenance() as session:
        return action(session, current_broker(), key, OPERATOR, context.clock())


def _report(outcomes: list[DeadLetterResult], verb: str, infinitive: str, as_json: bool) -> None:
    done = [o for o in outcomes if o.done]
    skipped = [o for o in outcomes if not o.done]
    data = {
        verb: [{"id": str(o.dead_letter_id), "message_id": o.message_id} for o in done],
        "unchanged": [
            {"id": str(o.dead_letter_id), "message_id": o.message_id, "state": o.state}
            for o in skipped
        ],
    }
    lines = [f"{verb} {o.dead_letter_id} ({o.actor}, message {o.message_id})" for o in done]
    lines += [f"unchanged {o.dead_letter_id}: already {o.state}" for o in skipped]
    emit(data, as_json, "\n".join(lines) or f"nothing to {infinitive}")
