"""cli.demo: the main job on the embedded default — demo data, layers, blueprint, screening, then serve."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import typer
from sqlalchemy.engine import make_url

from cli.common import domain_errors, emit, note
from layers.errors import OneBlueprintError
from runtime.settings import Settings, get_settings

ROOT = Path(__file__).resolve().parent.parent
DEMO_DATA = ROOT / "data" / "demo"
GENERATOR = ROOT / "data" / "generate.py"
GENERATORS = (GENERATOR, ROOT / "data" / "planning.py")  # the detailed plan and assessments: data.planning
DEMO_BY = "demo"
DEFAULT_FARMLAND = 50_000  # 20 s end to end on the quiet 2-core box (5,000: 10 s); README


class DemoError(OneBlueprintError):
    """The demo cannot run without reporting stale data or deleting data it did not make."""

    code = "demo_error"


class DemoStaleError(DemoError):
    code = "demo_stale_database"


def generator_fingerprint() -> str:
    """sha256 of the generator sources: data made by another generator is regenerated."""
    digest = hashlib.sha256()
    for path in GENERATORS:
        digest.update(path.read_bytes())
    return digest.hexdigest()


def ensure_demo_data(out: Path, farmland: int) -> dict[str, Any]:
    """Generate the Tongling demo dataset unless the same one (size, generator) is there already."""
    manifest_path = out / "manifest.json"
    fingerprint = generator_fingerprint()
    if manifest_path.exists():
        manifest: dict[str, Any] = json.loads(manifest_path.read_text(encoding="utf-8"))
        if manifest.get("farmland") == farmland and manifest.get("generator") == fingerprint:
            note(f"demo data: reusing {out} ({farmland} farmland patches)")
            return manifest
    note(f"demo data: generating into {out} ({farmland} farmland patches)")
    from data.generate import generate

    manifest_path.unlink(missing_ok=True)  # a run interrupted mid-generation leaves no valid manifest
    manifest = generate(out, farmland=farmland)
    manifest["farmland"] = farmland
    manifest["generator"] = fingerprint
    manifest_path.write_text(json.dumps(manifest, ensure_ascii=False, indent=2), encoding="utf-8")
    return manifest


def embedded_database(settings: Settings) -> Path | None:
    """The SpatiaLite file of the embedded default, or None when BLUEPRINT_DATABASE_URL points elsewhere."""
    if settings.database_url:
        return None
    return Path(make_url(settings.resolved_database_url).database or "")


def start_fresh(settings: Settings, keep: bool) -> bool:
    """Remove the previous demo database unless ``keep``; True when this run starts from an empty one.

    Only the embedded database is removed, and only when every layer in it was stored by the demo;
    an external database (BLUEPRINT_DATABASE_URL) is never touched — the checksum checks guard it.
    """
    path = embedded_database(settings)
    if path is None:
        note("demo database: BLUEPRINT_DATABASE_URL is set, so the demo keeps it and checks its layers "
             "against the generated files")
        return False
    if not path.exists():
        note(f"demo database: new, {path}")
        return True
    if keep:
        note(f"demo database: keeping {path} (--keep); its layers are checked against the generated files")
        return False
    strangers = layers_not_by_demo(settings)
    if strangers:
        raise DemoError(
            f"{path} holds layers the demo did not store ({', '.join(strangers[:5])}); the demo will not "
            "delete them. Set BLUEPRINT_DATA_DIR to another directory, or pass --keep to use it as it is")
    for suffix in ("", "-wal", "-shm", "-journal"):
        Path(f"{path}{suffix}").unlink(missing_ok=True)
    note(f"demo database: starting fresh, removed the previous demo database {path} (--keep keeps it)")
    return True


def layers_not_by_demo(settings: Settings) -> list[str]:
    """Names of stored layers that another user (not the demo) stored."""
    from runtime.stores import open_stores

    stores = open_stores(settings)
    try:
        return [row["name"] for row in stores.layers.list() if row.get("created_by") != DEMO_BY]
    finally:
        stores.close()


def import_layers(settings: Settings, stores: Any, manifest: dict[str, Any],
                  root: Path) -> list[dict[str, Any]]:
    """Import every plan layer and the city boundary the manifest lists.

    A layer already stored under the same name is reused only when its checksum is the generated
    file's; otherwise the stored one is stale and the run stops rather than report it.
    """
    from layers.catalogue import load_catalogue
    from layers.crs import parse_crs
    from layers.ingest import read_layer

    catalogue = load_catalogue(settings.catalogue_file)
    stored = {row["name"]: row for row in stores.layers.list()}
    rasters = [{**entry, "raster_values": [entry["zone_value"]]} for entry in manifest.get("rasters", [])]
    entries = [*manifest["layers"], *rasters,
               # the four 区县 (together exactly the city outline): the map names them from this layer
               {"path": manifest.get("districts") or manifest["boundary"], "kind": "city_boundary",
                "name": "铜陵市行政区域"}]
    summaries = []
    for entry in entries:
        name = entry.get("name") or Path(entry["path"]).stem
        layer = read_layer(root / entry["path"], entry["kind"], work_crs=settings.work_crs,
                           catalogue=catalogue, crs=parse_crs(entry["crs"]) if entry.get("crs") else None,
                           encoding=entry.get("encoding"), layer=entry.get("layer"), name=name,
                           raster_values=entry.get("raster_values"))
        if name in stored:
            summaries.append(reuse_stored(stored[name], layer.checksum, root / entry["path"]))
            continue
        note(f"import {entry['path']} as {entry['kind']}")
        summaries.append(stores.layers.save(layer, by=DEMO_BY))
    return summaries


def reuse_stored(row: dict[str, Any], checksum: str, path: Path) -> dict[str, Any]:
    """The stored layer's summary when it is the file's layer; a stale one stops the run."""
    if row["checksum"] != checksum:
        raise DemoStaleError(
            f"the database already holds layer {row['name']} from other data (its checksum differs from "
            f"{path}): run the demo without --keep to start from a fresh database, or point "
            "BLUEPRINT_DATABASE_URL / BLUEPRINT_DATA_DIR at an empty one")
    note(f"import {path.name}: already stored with the same checksum, reused")
    return dict(row)


def build_and_publish(settings: Settings, stores: Any) -> dict[str, Any]:
    """Build a draft from the stored layers and publish it, unless a published version exists."""
    from approval.audit import Principal
    from approval.rescreen import on_publish
    from blueprint.errors import NoPublishedBlueprintError
    from blueprint.merge import build_blueprint
    from blueprint.precedence import load_precedence
    from layers.catalogue import load_catalogue

    try:
        latest = dict(stores.blueprints.latest_published().summary())
    except NoPublishedBlueprintError:
        latest = None
    if latest is not None and built_from_stored(latest, stores):
        note(f"blueprint {latest['version']}: published from these very layers, reused")
        return latest
    if latest is not None:
        note(f"blueprint {latest['version']} was built from other layers: building a new version")
    catalogue = load_catalogue(settings.catalogue_file)
    all_layers = stores.layers.load_all()
    boundary = next((layer for layer in all_layers if catalogue[layer.kind].group == "boundary"), None)
    plan_layers = [layer for layer in all_layers if layer is not boundary]
    note(f"build: merging {len(plan_layers)} layers")
    blueprint = build_blueprint(
        plan_layers, catalogue=catalogue, precedence=load_precedence(settings.precedence_file, catalogue),
        tolerance_m=settings.tolerance_m, version=stores.blueprints.next_version(), created_by="demo",
        boundary=boundary, progress=throttled_progress())
    stores.blueprints.save_draft(blueprint)
    stores.blueprints.publish(blueprint.version, by="demo",
                              also=on_publish(blueprint.version, Principal("demo", "admin")))
    note(f"published blueprint {blueprint.version}")
    return dict(stores.blueprints.get(blueprint.version).summary())


def built_from_stored(summary: dict[str, Any], stores: Any) -> bool:
    """True when every layer a blueprint was built from is stored now with the same checksum."""
    current = {(row["name"], row["checksum"]) for row in stores.layers.list()}
    return all((ref["name"], ref["checksum"]) in current for ref in summary["layers"])


def throttled_progress() -> Callable[[str, float], None]:
    """A build progress callback that notes each step once and then every quarter, not every cell."""
    shown: set[tuple[str, int]] = set()

    def report(step: str, fraction: float) -> None:
        mark = (step, int(fraction * 4))
        if mark not in shown:
            shown.add(mark)
            note(f"build: {step} {fraction:.0%}")

    return report


def run(farmland: int = DEFAULT_FARMLAND, serve: bool = True, host: str = "127.0.0.1", port: int = 8000,
        data: Path = DEMO_DATA, keep: bool = False) -> dict[str, Any]:
    """Everything the README's first command promises, on the embedded database by default.

    Each run starts from a fresh demo database (the previous one is removed) unless ``keep``; a kept
    or external database is used only if its layers are the generated files (checksums).
    """
    from runtime.stores import open_stores

    settings = get_settings()
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    manifest = ensure_demo_data(data, farmland)
    fresh = start_fresh(settings, keep)
    stores = open_stores(settings)
    try:
        layers = import_layers(settings, stores, manifest, data)
        summary = build_and_publish(settings, stores)
    finally:
        stores.close()
    screening = screen_demo_projects(settings, manifest, data)
    result = {"version": summary["version"],
              "data_dir": str(settings.data_dir.resolve()), "demo_data": str(data.resolve()),
              "database": database_label(settings), "fresh_database": fresh,
              "blueprint": summary,
              "layers": [{"name": s["name"], "kind": s["kind"], "feature_count": s["feature_count"]}
                         for s in layers],
              "screening": screening}
    emit(result)
    if serve:
        serve_forever(settings, host, port)
    return result


def database_label(settings: Settings) -> str:
    """The database URL without its password, for the printed summary."""
    return make_url(settings.resolved_database_url).render_as_string(hide_password=True)


def screen_demo_projects(settings: Settings, manifest: dict[str, Any], root: Path) -> dict[str, Any]:
    """Register the demo projects through the API (as the approval system would) and screen them.

    The seeder drives the real app in process, so it lives with the API; like `blueprint serve` loads the
    app, it is loaded by its import string and the CLI imports nothing of ``api``."""
    from uvicorn.importer import import_from_string

    seed_projects = import_from_string("api.demo_seed:seed_projects")
    return dict(seed_projects(settings, manifest, root))


def serve_forever(settings: Settings, host: str, port: int) -> None:
    import uvicorn
    from uvicorn.importer import import_from_string

    from cli.serve_cmd import logs_to_stderr

    create_app = import_from_string("api.app:create_app")  # as `blueprint serve` does

    note(f"serving API on http://{host}:{port}/docs and the map on http://{host}:{port}/viewer")
    uvicorn.run(create_app(settings), host=host, port=port, log_level="info", log_config=logs_to_stderr(),
                timeout_keep_alive=settings.keep_alive_seconds)


def main(farmland: int = typer.Option(DEFAULT_FARMLAND, help="farmland patches in the generated demo"),
         serve: bool = typer.Option(True, help="serve API + viewer after screening"),
         keep: bool = typer.Option(False, "--keep", help="keep the previous demo database instead of "
                                   "starting fresh (refused if its layers are not the generated files)"),
         data: Path = typer.Option(DEMO_DATA, help="directory for the generated demo files"),
         host: str = "127.0.0.1", port: int = 8000) -> None:
    """Build the Tongling demo blueprint, screen the demo parcels, serve API + viewer."""
    with domain_errors():
        run(farmland=farmland, serve=serve, host=host, port=port, data=data, keep=keep)


if __name__ == "__main__":
    typer.run(main)
