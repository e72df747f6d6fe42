"""The quick start `leadline up` prints and the README shows: one list, also run by the tests
(tests/e2e/test_quick_start.py), so the text cannot drift from what works.

Every line runs as pasted in bash or zsh from the project directory, with no comment lines
(zsh does not take them interactively) and nothing to fill in.
"""

from __future__ import annotations

from dataclasses import dataclass

ORG_NUMBER = "+14155550100"  # the org's Twilio number: texts to it route to the org
OWNER_PHONE = "+14155550111"  # the business owner's phone: lead alerts go there
LEAD_PHONE = "+14155550123"  # Ada, the lead who agrees to texts, then texts STOP
LEAD = (
    '{"name": "Ada", "phone": "' + LEAD_PHONE + '", '
    '"consent": {"sms": true, "text": "I agree to texts"}}'
)


@dataclass(frozen=True)
class Step:
    command: str
    shows: str = ""  # what a test checks once the step ran ("" for set-up lines)


def quick_start_steps(intake_url: str, sandbox_url: str) -> list[Step]:
    leadline = ".venv/bin/leadline"
    sms = f"{leadline} simulate sms {LEAD_PHONE} {ORG_NUMBER}"
    return [
        Step(f"INTAKE={intake_url} SANDBOX={sandbox_url}"),
        Step(
            "field() { python3 -c "
            "'import json, sys; print(json.load(sys.stdin)[sys.argv[1]])' \"$1\"; }"
        ),
        Step(
            'sent() { sleep 2; curl -s "$SANDBOX/sent" | python3 -c '
            '\'import json, sys; [print(m["to"], m["body"][:60]) '
            "for m in json.load(sys.stdin)]'; }"
        ),
        Step(f'ORG=$({leadline} org create "Acme Roofing" --json | field id)'),
        Step(f'KEY=$({leadline} apikey create "$ORG" --json | field key)'),
        Step(f'{leadline} number add "$ORG" {ORG_NUMBER}'),
        Step(f'{leadline} alerts add-number "$ORG" {OWNER_PHONE}'),
        Step(f'{leadline} alerts settings "$ORG" --autoreply'),
        Step(
            f'curl -s "$INTAKE/v1/leads" -H "Authorization: Bearer $KEY" '
            f"-H \"Content-Type: application/json\" -d '{LEAD}'; echo",
            shows="lead_stored",
        ),
        Step("sent", shows="lead_texted"),
        Step(f'{sms} STOP --wait --url "$INTAKE"', shows="opted_out"),
        Step(f'{sms} HELP --url "$INTAKE"', shows="reply_blocked"),
        Step("sent", shows="nothing_new"),
    ]


def render_quick_start(intake_url: str, sandbox_url: str) -> str:
    """The explanation and the commands, indented for a terminal or a Markdown code block."""
    steps = quick_start_steps(intake_url, sandbox_url)
    commands = "\n".join(f"  {step.command}" for step in steps)
    return f"""\
In another terminal, from this directory, paste these lines (bash or zsh). They create an
organisation with an API key, its Twilio number {ORG_NUMBER} and the owner's alert number
{OWNER_PHONE}, turn auto-replies on, and post a lead, Ada ({LEAD_PHONE}), who agrees to texts.
`sent` lists what reached the provider sandbox: the owner's alert and Ada's auto-reply. Then
Ada texts STOP (an inbound SMS signed like Twilio's) and HELP: the HELP reply is blocked, so
the last `sent` shows nothing new for {LEAD_PHONE}.

{commands}
"""
