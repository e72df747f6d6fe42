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
