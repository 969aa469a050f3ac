"""cli.serve_cmd: `blueprint serve` (the API and viewer under uvicorn) and `blueprint keys` (API keys)."""

from __future__ import annotations

import copy
from typing import Annotated, Any

import typer

from cli.common import emit, note

ROLES = ("planner", "reviewer", "admin", "approval_system", "department")  # as approval.audit.ROLES


def register(app: typer.Typer) -> None:
    """Add `serve` and the `keys` group to ``app``."""
    app.command("serve")(serve)
    app.command("worker")(worker)
    keys = typer.Typer(no_args_is_help=True, help="API keys (stored hashed; a new key is shown once).")
    keys.command("create")(create_key)
    keys.command("list")(list_keys)
    keys.command("revoke")(revoke_key)
    keys.command("file-entry")(file_entry)
    app.add_typer(keys, name="keys")


def serve(
    host: Annotated[str, typer.Option(help="interface to listen on")] = "127.0.0.1",
    port: Annotated[int, typer.Option(min=1, max=65535)] = 8000,
    workers: Annotated[int, typer.Option(min=1, max=64, help="uvicorn worker processes")] = 1,
) -> None:
    """Serve the API (/api/v1, /ogc, /docs) and the viewer (/viewer) with uvicorn."""
    import uvicorn

    from runtime.settings import get_settings

    note(f"serving on http://{host}:{port} (API docs at /docs, viewer at /viewer)")
    # the factory is called in each worker, so settings and the database are opened there, not here;
    # only the server's own settings are read in this process
    uvicorn.run(
        "api.app:create_app",
        factory=True,
        host=host,
        port=port,
        workers=workers,
        log_level="info",
        log_config=logs_to_stderr(),
        proxy_headers=False,
        timeout_keep_alive=get_settings().keep_alive_seconds,
    )


def worker(
    once: Annotated[bool, typer.Option("--once", help="run the jobs waiting now, then stop")] = False,
) -> None:
    """Run durable jobs (checks of large submissions, ...) from the database until stopped (Ctrl-C, SIGTERM).

    `blueprint serve` already runs one in process; start more on this or other machines sharing the
    database. A job whose worker is killed is taken up by another once its lease runs out.
    """
    import signal

    from approval.worker import Worker
    from runtime.services import Services
    from runtime.settings import get_settings

    services = Services.open(get_settings())
    try:
        from viewer.store_source import register_tile_jobs
    except ImportError as exc:  # no viewer here: tile jobs wait for a worker that has it
        note(f"tile jobs not handled here: {exc}")
    else:
        register_tile_jobs(services)
    services.jobs.release_dead_local()  # jobs a killed worker of this host was running resume at once
    runner = Worker(services.jobs, services.job_handlers())
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: runner.stopping.set())  # the running job finishes first
    note(f"worker {runner.name}: taking jobs ({'once' if once else 'until stopped'})")
    try:
        services.outbox.sweep()  # webhook deliveries due now become jobs
        if not once:
            services.outbox.start(services.settings.webhook_sweep_seconds)
        if once:
            ran = 0
            while not runner.stopping.is_set() and runner.run_once():
                ran += 1
            note(f"ran {ran} job(s)")
        else:
            runner.run()
        emit({"worker": runner.name, "jobs": services.jobs.counts()})
    finally:
        services.close()


def logs_to_stderr() -> dict[str, Any]:
    """uvicorn's logging config with the access log moved to stderr: stdout is for JSON only."""
    from uvicorn.config import LOGGING_CONFIG

    config = copy.deepcopy(LOGGING_CONFIG)
    for handler in config["handlers"].values():
        handler["stream"] = "ext://sys.stderr"
    return config


def create_key(
    role: Annotated[str, typer.Option(help=f"one of {', '.join(ROLES)}")],
    name: Annotated[str, typer.Option(help="who or what the key is for, e.g. 'approval system'")],
    department: Annotated[
        str | None, typer.Option(help="for --role department: the department key, e.g. water")
    ] = None,
) -> None:
    """Create an API key and print it once as JSON (only its salted hash is stored)."""
    if role not in ROLES:
        raise typer.BadParameter(f"role must be one of {', '.join(ROLES)}", param_hint="--role")
    if (role == "department") != bool(department):
        raise typer.BadParameter("a department key names its --department; other roles name none")
    from approval.audit import Principal
    from approval.departments import load_departments
    from runtime.db import open_database
    from runtime.keys import KeyStore
    from runtime.settings import get_settings

    settings = get_settings()
    known = load_departments(settings.departments_file)
    if department and department not in known:
        raise typer.BadParameter(f"unknown department; one of {', '.join(known)}", param_hint="--department")
    engine = open_database(settings)
    try:
        key, record = KeyStore(engine).create(
            name, role, by=Principal("cli", "admin"), department=department  # type: ignore[arg-type]
        )
    finally:
        engine.dispose()
    emit({**record, "key": key})
    note("store this key now: it is not kept and cannot be shown again")


def list_keys() -> None:
    """List API keys (names, roles, dates; never the keys)."""
    from runtime.db import open_database
    from runtime.keys import KeyStore
    from runtime.settings import get_settings

    engine = open_database(get_settings())
    try:
        emit({"keys": KeyStore(engine).list()})
    finally:
        engine.dispose()


def revoke_key(key_id: Annotated[str, typer.Argument(help="the key_id shown by `keys list`")]) -> None:
    """Revoke an API key; requests with it are refused from then on."""
    from approval.audit import Principal
    from runtime.db import open_database
    from runtime.keys import KeyStore
    from runtime.settings import get_settings

    engine = open_database(get_settings())
    try:
        done = KeyStore(engine).revoke(key_id, by=Principal("cli", "admin"))
    finally:
        engine.dispose()
    emit({"key_id": key_id, "revoked": done})
    if not done:
        raise typer.Exit(3)


def file_entry(
    role: Annotated[str, typer.Option(help=f"one of {', '.join(ROLES)}")],
    name: Annotated[str, typer.Option(help="who or what the key is for")],
    department: Annotated[
        str | None, typer.Option(help="for --role department: the department key, e.g. water")
    ] = None,
) -> None:
    """Make a key for BLUEPRINT_API_KEYS_FILE: prints the key once and the entry to append to the file."""
    if role not in ROLES:
        raise typer.BadParameter(f"role must be one of {', '.join(ROLES)}", param_hint="--role")
    if (role == "department") != bool(department):
        raise typer.BadParameter("a department key names its --department; other roles name none")
    import secrets

    from runtime.keys import key_digest

    key = f"obf_{secrets.token_urlsafe(32)}"
    entry = {"name": name, "role": role, "sha256": key_digest(key)}
    if department:
        entry["department"] = department
    emit({"key": key, "entry": entry})
    note("append the entry to the JSON list in the keys file; the key itself is not kept anywhere")
