"""cli.common: output conventions shared by every command (JSON on stdout, notes on stderr)."""

from __future__ import annotations

import json
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any, NoReturn

import typer
from rich.console import Console

from layers.errors import OneBlueprintError

stderr = Console(stderr=True)
EXIT_BAD_INPUT = 3


def emit(payload: Any) -> None:
    """Print one machine-readable JSON document on stdout."""
    sys.stdout.write(json.dumps(payload, ensure_ascii=False, indent=2, default=str) + "\n")
    sys.stdout.flush()


def note(message: str) -> None:
    """A human note on stderr."""
    stderr.print(message, highlight=False)


def fail(error: OneBlueprintError, exit_code: int = EXIT_BAD_INPUT) -> NoReturn:
    """Report a domain error: JSON on stdout, a readable line on stderr, non-zero exit."""
    emit({"error": {"code": error.code, "detail": error.user_message}})
    stderr.print(f"[red]error[/red] ({error.code}): {error.user_message}", highlight=False)
    raise typer.Exit(exit_code)


@contextmanager
def domain_errors(exit_code: int = EXIT_BAD_INPUT) -> Iterator[None]:
    """Turn domain errors into a clean exit; never a traceback for bad input."""
    try:
        yield
    except OneBlueprintError as exc:
        fail(exc, exit_code)
