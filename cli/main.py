"""cli.main: the `blueprint` console script; each command group registers itself here."""

from __future__ import annotations

import sys

import typer

from cli import blueprint_cmd, check_cmd, checklist_cmd, layers_cmd, rules_cmd, serve_cmd
from cli.common import domain_errors, emit


def build_app() -> typer.Typer:
    """Assemble the CLI (a factory, so nothing is built at import)."""
    app = typer.Typer(no_args_is_help=True, add_completion=False,
                      help="One Blueprint 一张蓝图: plan layers, blueprints and project screening.")
    app.callback()(_root)
    app.command("kinds")(list_kinds)
    for module in (layers_cmd, blueprint_cmd, check_cmd, checklist_cmd, rules_cmd, serve_cmd):
        module.register(app)
    return app


def _root() -> None:
    """One Blueprint 一张蓝图: plan layers, blueprints and project screening."""


def list_kinds() -> None:
    """List the layer catalogue (kinds, Chinese and English names, groups, codes) as JSON."""
    from layers.catalogue import load_catalogue
    from runtime.settings import get_settings

    with domain_errors():
        catalogue = load_catalogue(get_settings().catalogue_file)
    emit({"kinds": [{**vars(kind), "fields": kind.field_map} for kind in catalogue.values()],
          "assessment_types": [vars(t) for t in catalogue.assessment_types.values()]})


EXIT_CRASH = 4  # 0 pass, 1 review, 2 conflict, 3 bad input: a crash must never look like a verdict


def main() -> None:
    """The console script: an unexpected exception exits 4 with a JSON error (Python's default 1 would
    read as "review" to a script checking the exit code)."""
    try:
        build_app()()
    except Exception as exc:  # typer has already printed the traceback on stderr
        emit({"error": {"code": "internal_error", "detail": f"{type(exc).__name__}: {exc}"}})
        sys.exit(EXIT_CRASH)


if __name__ == "__main__":
    main()
