"""Telegram updates → alert chats: `/start CODE` links, `/start` asks, `/stop` unlinks.

See models.telegram_links for the link-code rules. Blocking or removing the bot (a
`my_chat_member` update with status kicked/left) unlinks the chat too.
"""

from __future__ import annotations

from dataclasses import dataclass

from leadline.jsondata import JsonObject, as_object
from models.audit import record_audit
from models.telegram_links import consume_link_code, find_chat, set_chat_status
from tasks.inbound_events import InboundContext

LEFT_STATUSES = {"kicked", "left"}


@dataclass(frozen=True)
class ChatCommand:
    chat_id: int
    command: str
    argument: str


def read_command(update: JsonObject) -> ChatCommand | None:
    """The bot command in a message update (`/start@Bot CODE` → /start, CODE)."""
    message = as_object(update.get("message"))
    chat_id = as_object(message.get("chat")).get("id")
    text = message.get("text")
    if not isinstance(chat_id, int) or not isinstance(text, str) or not text.startswith("/"):
        return None
    word, _, argument = text.strip().partition(" ")
    return ChatCommand(chat_id, word.split("@")[0].lower(), argument.strip())


def read_bot_removal(update: JsonObject) -> int | None:
    member = as_object(update.get("my_chat_member"))
    chat_id = as_object(member.get("chat")).get("id")
    status = as_object(member.get("new_chat_member")).get("status")
    if isinstance(chat_id, int) and status in LEFT_STATUSES:
        return chat_id
    return None


def start(ctx: InboundContext, command: ChatCommand) -> None:
    existing = find_chat(ctx.session, ctx.cipher, command.chat_id)
    code_ok = bool(command.argument) and consume_link_code(ctx.session, command.argument, ctx.now)
    if code_ok:
        status = "linked"
    elif existing is not None and existing.status == "linked":
        return
    else:
        status = "pending"
    chat = set_chat_status(ctx.session, ctx.cipher, command.chat_id, status, ctx.now)
    record_audit(
        ctx.session, "telegram", f"telegram.chat_{status}", org_id=ctx.org_id, target=str(chat.id)
    )


def unlink(ctx: InboundContext, chat_id: int) -> None:
    if find_chat(ctx.session, ctx.cipher, chat_id) is None:
        return
    chat = set_chat_status(ctx.session, ctx.cipher, chat_id, "unlinked", ctx.now)
    record_audit(
        ctx.session, "telegram", "telegram.chat_unlinked", org_id=ctx.org_id, target=str(chat.id)
    )


def handle_telegram_update(ctx: InboundContext) -> None:
    removed = read_bot_removal(ctx.payload)
    if removed is not None:
        unlink(ctx, removed)
        return
    command = read_command(ctx.payload)
    if command is None:
        return
    if command.command == "/start":
        start(ctx, command)
    elif command.command == "/stop":
        unlink(ctx, command.chat_id)
