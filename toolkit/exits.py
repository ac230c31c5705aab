"""Mapping of errors to the CLI's one-line messages and exit codes."""

from __future__ import annotations

import click

from storylake.errors import InvalidInputError, NotFoundError, StorylakeError

EXIT_FAILURE, EXIT_USAGE, EXIT_PERMISSION, EXIT_NOT_FOUND = 1, 2, 3, 4


def exit_code_for(exc: BaseException) -> tuple[int, str]:
    """(exit code, one-line message) for an exception reaching the CLI boundary."""
    mro = {c.__name__ for c in type(exc).__mro__}
    if isinstance(exc, click.exceptions.Abort) or "Abort" in mro:
        return EXIT_FAILURE, "aborted"
    if isinstance(exc, click.ClickException) or "ClickException" in mro:  # typer may bundle its own click
        return EXIT_USAGE, exc.format_message()  # type: ignore[attr-defined]
    if isinstance(exc, PermissionError):
        return EXIT_PERMISSION, f"permission denied: {exc}"
    if isinstance(exc, NotFoundError):
        return EXIT_NOT_FOUND, f"not found: {exc}"
    if isinstance(exc, InvalidInputError):
        return EXIT_USAGE, str(exc).strip().splitlines()[0]
    name = type(exc).__name__
    text = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
    if name == "QualityGateError" or isinstance(exc.__cause__, Exception) and (
        type(exc.__cause__).__name__ == "QualityGateError"
    ):
        return EXIT_FAILURE, str(exc).strip()  # the full list of failed expectations and sample keys
    if isinstance(exc, StorylakeError):
        return EXIT_FAILURE, text
    return EXIT_FAILURE, f"{name}: {text}" if text else name
