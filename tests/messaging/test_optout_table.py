"""The opt-out table: what a person may text to say "no more", in English, French and Spanish,
with the case, punctuation, emoji and spacing people really use, beside lookalikes that must
keep the conversation going. Each ambiguous row is a choice written down in docs/messaging.md.
"""

from __future__ import annotations

import pytest

from tasks.optouts import Intent, classify, optout_reason

pytestmark = pytest.mark.unit

OUT, MSG, IN, HELP = Intent.OPT_OUT, Intent.MESSAGE, Intent.OPT_IN, Intent.HELP

TABLE: list[tuple[str, Intent]] = [
    # keywords, whole message
    ("STOP", OUT),
    ("stop", OUT),
    ("Stop", OUT),
    ("  stop  ", OUT),
    ("\tSTOP\n", OUT),
    ("stop.", OUT),
    ("STOP!", OUT),
    ("Stop!!!", OUT),
    ("STOP?", OUT),  # ambiguous: a question mark does not make it a question
    ("stop 🛑", OUT),
    ("🛑STOP🛑", OUT),
    ("\uff33\uff34\uff2f\uff30", OUT),  # fullwidth STOP
    ("st\u200bop", OUT),  # a zero-width space pasted in
    ("STOP\u00a0", OUT),  # a no-break space
    ("STOP STOP", OUT),
    ("stop, stop, stop", OUT),
    ("STOPALL", OUT),
    ("stop all", OUT),
    ("Unsubscribe", OUT),
    ("CANCEL", OUT),
    ("cancel.", OUT),
    ("END", OUT),
    ("quit", OUT),
    ("Revoke", OUT),
    ("OPTOUT", OUT),
    ("opt out", OUT),
    ("Opt-Out", OUT),
    ("REMOVE", OUT),
    ("remove!", OUT),
    ("ARRET", OUT),
    ("ARRÊT", OUT),
    ("arrêt", OUT),
    ("Arrêt.", OUT),
    ("arrêtez", OUT),
    ("PARAR", OUT),
    ("parar", OUT),
    ("¡Parar!", OUT),
    ("ALTO", OUT),
    ("alto", OUT),
    ("¡ALTO!", OUT),
    ("BAJA", OUT),
    ("baja", OUT),
    ("CANCELAR", OUT),
    ("Cancelar.", OUT),
    ("Alto", OUT),  # ambiguous: also a car model; alone, it is read as the keyword
    # free-text revocations
    ("please stop texting me", OUT),
    ("Stop texting me!!", OUT),
    ("STOP texting me 😡", OUT),
    ("stop txting me", OUT),
    ("stop please", OUT),
    ("Please stop", OUT),
    ("PLEASE STOP!!!", OUT),
    ("pls stop", OUT),
    ("plz stop texting", OUT),
    ("stop it", OUT),
    ("Stop this.", OUT),
    ("stop now", OUT),
    ("stop messaging me", OUT),
    ("STOP sending me these", OUT),
    ("stop contacting me", OUT),
    ("Stop. Who is this?", OUT),
    ("Stop, wrong person", OUT),
    ("quit texting me", OUT),
    ("Quit messaging me please", OUT),
    ("take me off your list", OUT),
    ("Take me off this list!", OUT),
    ("please take me off your list", OUT),
    ("take me off", OUT),
    ("take my number off your list", OUT),
    ("remove me", OUT),
    ("remove me from your list", OUT),
    ("Remove my number", OUT),
    ("wrong number", OUT),
    ("Wrong number!", OUT),
    ("sorry, wrong number", OUT),
    ("You have the wrong number", OUT),
    ("no more texts", OUT),
    ("No more messages please", OUT),
    ("no more sms", OUT),
    ("unsubscribe me please", OUT),
    ("Unsubscribe me", OUT),
    ("please unsubscribe", OUT),
    ("opt me out", OUT),
    ("how do I opt out?", OUT),  # ambiguous: asking how is taken as asking for it
    ("do not text me", OUT),
    ("don't text me again", OUT),
    ("Don\u2019t contact me", OUT),  # curly apostrophe
    ("dont message me", OUT),
    ("never text me again", OUT),
    ("don't ever call me again", OUT),
    ("Don't call me, text me instead", OUT),  # ambiguous: any "don't contact me" stops
    ("do not contact this number", OUT),
    ("leave me alone", OUT),
    ("not interested", OUT),
    ("Not interested, thanks", OUT),
    ("not interested in metal, shingles please", OUT),  # ambiguous: stops the whole program
    ("lose my number", OUT),
    ("delete my number please", OUT),
    ("no more texts until Monday", OUT),  # ambiguous: stops until they text START
    ("no me manden mas mensajes", OUT),
    ("No me manden más mensajes", OUT),
    ("número equivocado", OUT),
    ("dejen de mandarme mensajes", OUT),
    ("quiero darme de baja", OUT),
    ("no más mensajes", OUT),
    ("arrêtez de m'envoyer des messages", OUT),
    ("je ne veux plus recevoir de messages, je veux ne plus recevoir", OUT),
    # lookalikes that must not opt out
    ("don't stop the discount?", MSG),
    ("I'll stop by tomorrow", MSG),
    ("Can you stop by on Tuesday?", MSG),
    ("Stop by anytime after 3", MSG),
    ("Please stop by the office", MSG),
    ("Can you please stop the leak first?", MSG),
    ("The rain will stop soon", MSG),
    ("Will the noise stop now?", MSG),
    ("Don't stop texting me the deals!", MSG),
    ("never stop sending me coupons 😂", MSG),
    ("Stopped by your office earlier", MSG),
    ("The bus stop is across the street", MSG),
    ("There's a stop sign near my house", MSG),
    ("Nonstop rain here", MSG),
    ("Cancel my appointment on Friday", MSG),  # ambiguous: cancel means the appointment
    ("I want to cancel the old quote and get a new one", MSG),
    ("End of the week works", MSG),
    ("The leak won't end", MSG),
    ("I quit my job, now I have time for the project", MSG),
    ("Remove the old shingles first", MSG),
    ("Take me off the schedule for Tuesday", MSG),
    ("I gave you the wrong number earlier, this one is right", MSG),
    ("I'm interested!", MSG),
    ("Send me more texts please", MSG),
    ("Text me the quote", MSG),
    ("Can you text me tomorrow instead?", MSG),
    ("Don't text my husband, text me", MSG),
    ("El techo es muy alto", MSG),  # alto as a Spanish word in a sentence
    ("La presión del agua está baja", MSG),
    ("Quiero cancelar la cita del martes", MSG),
    ("Hay que parar la fuga", MSG),
    ("Nos vamos a Baja California", MSG),
    ("para", MSG),  # ambiguous: too common a Spanish word to be a keyword
    ("L'arrêt de bus est devant chez moi", MSG),
    ("Is Tuesday at 3 ok?", MSG),
    ("🙂", MSG),
    ("   ", MSG),
    ("", MSG),
    ("stopwatch", MSG),
    # opt-in and help stay what they were
    ("START", IN),
    ("yes", IN),
    (" Unstop. ", IN),
    ("Yes please, Tuesday works", MSG),
    ("HELP", HELP),
    ("help?", HELP),
    ("Info", HELP),
]


def test_the_table_is_large_enough() -> None:
    assert len(TABLE) >= 100
    assert sum(intent is OUT for _, intent in TABLE) >= 50
    assert sum(intent is MSG for _, intent in TABLE) >= 30


@pytest.mark.parametrize(("body", "intent"), TABLE, ids=[repr(body) for body, _ in TABLE])
def test_classify(body: str, intent: Intent) -> None:
    assert classify(body) is intent


@pytest.mark.parametrize(
    ("body", "reason"),
    [
        ("ARRÊT!", "keyword"),
        ("stop stop", "keyword"),
        ("¡Baja!", "keyword"),
        ("wrong number", "free_text"),
        ("please stop texting me", "free_text"),
    ],
)
def test_reason_says_how_it_was_said(body: str, reason: str) -> None:
    assert optout_reason(body) == reason
