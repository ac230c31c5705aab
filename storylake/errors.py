"""Errors every part shares: a user-facing error's message is the one-line answer a person sees."""

from __future__ import annotations


class StorylakeError(Exception):
    """Base (mixin) of the errors whose message is meant for the user as it is: it names the bad field/value or the
    failed step, so the CLI prints it alone, without the class name."""


class NotFoundError(StorylakeError, LookupError):
    """An id (segment, user, story) does not exist in the data asked about."""


class InvalidInputError(StorylakeError, ValueError):
    """A value the caller gave is not acceptable (a cursor not issued here, an --as-of before the data): exit 2."""
