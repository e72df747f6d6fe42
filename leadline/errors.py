"""The exception tree. Every error Leadline raises on purpose is a LeadlineError.

Messages never contain PII or secrets: they name what failed, not the values involved.
"""


class LeadlineError(Exception):
    """Base class for every error raised on purpose by Leadline."""


class ConfigError(LeadlineError):
    """The settings are missing, malformed or unsafe for the chosen environment."""


class CryptoError(LeadlineError):
    """A value could not be encrypted or decrypted (wrong key, wrong binding, tampering)."""


class KeyNotFoundError(CryptoError):
    """The key needed for a value is gone (never existed, or was shredded)."""


class VerificationError(LeadlineError):
    """An inbound request failed signature or credential verification."""


class NotFoundError(LeadlineError):
    """A referenced row does not exist within the current tenant scope."""


class DeliveryError(LeadlineError):
    """Base class for outcomes of calls to providers and webhook receivers."""


class TransientDeliveryError(DeliveryError):
    """The call failed in a way that is safe to retry."""


class PermanentDeliveryError(DeliveryError):
    """The call failed in a way that retrying cannot fix."""


class RecipientOptedOut(PermanentDeliveryError):
    """The recipient has opted out; nothing may be sent to them."""


class OutcomeUnknownError(PermanentDeliveryError):
    """The request may have reached the provider; re-sending could duplicate it."""
