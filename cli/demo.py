"""cli.demo: the main job on the embedded default — demo data, layers, blueprint, screening, then serve."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import typer

from api.settings import Settings, get_settings
from cli.common import domain_errors, emit, note

ROOT = Path(__file__).resolve().parent.parent
DEMO_DATA = ROOT / "data" / "demo"


def ensure_demo_data(out: Path, farmland: int) -> dict[str, Any]:
    """Generate the Tongling demo dataset unless the same one (seed, size) is there already."""
    manifest_path = out / "manifest.json"
    if manifest_path.exists():
        manifest: dict[str, Any] = json.loads(manifest_path.read_text(encoding="utf-8"))
        if manifest.get("farmland") == farmland:
            note(f"demo data: reusing {out}")
            return manifest
    note(f"demo data: generating into {out} ({farmland} farmland patches)")
    from data.generate import generate

    manifest = generate(out, farmland=farmland)
    manifest["farmland"] = farmland
    manifest_path.write_text(json.dumps(manifest, ensure_ascii=False, indent=2), encoding="utf-8")
    return manifest


def import_layers(settings: Settings, stores: Any, manifest: dict[str, Any],
                  root: Path) -> list[dict[str, Any]]:
    """Import every plan layer and the city boundary the manifest lists; skip ones already stored."""
    from layers.catalogue import load_catalogue
    from layers.crs import parse_crs
    from layers.ingest import read_layer

    catalogue = load_catalogue(settings.catalogue_file)
    stored = {row["name"]: row for row in stores.layers.list()}
    rasters = [{**entry, "raster_values": [entry["zone_value"]]} for entry in manifest.get("rasters", [])]
    entries = [*manifest["layers"], *rasters,
               {"path": manifest["boundary"], "kind": "city_boundary", "name": "铜陵市行政区域"}]
    summaries = []
    for entry in entries:
        name = entry.get("name") or Path(entry["path"]).stem
        if name in stored:
            summaries.append(stored[name])
            continue
        note(f"import {entry['path']} as {entry['kind']}")
        layer = read_layer(root / entry["path"], entry["kind"], work_crs=settings.work_crs,
                           catalogue=catalogue, crs=parse_crs(entry["crs"]) if entry.get("crs") else None,
                           encoding=entry.get("encoding"), layer=entry.get("layer"), name=name,
                           raster_values=entry.get("raster_values"))
        summaries.append(stores.layers.save(layer, by="demo"))
    return summaries


def build_and_publish(settings: Settings, stores: Any) -> dict[str, Any]:
    """Build a draft from the stored layers and publish it, unless a published version exists."""
    from blueprint.errors import NoPublishedBlueprintError
    from blueprint.merge import build_blueprint
    from blueprint.precedence import load_precedence
    from layers.catalogue import load_catalogue

    try:
        return dict(stores.blueprints.latest_published().summary())
    except NoPublishedBlueprintError:
        pass
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
    stores.blueprints.publish(blueprint.version, by="demo")
    note(f"published blueprint {blueprint.version}")
    return dict(stores.blueprints.get(blueprint.version).summary())


def throttled_progress() -> Callable[[str, float], None]:
    """A build progress callback that notes each step once and then every quarter, not every cell."""
    shown: set[tuple[str, int]] = set()

    def report(step: str, fraction: float) -> None:
        mark = (step, int(fraction * 4))
        if mark not in shown:
            shown.add(mark)
            note(f"build: {step} {fraction:.0%}")

    return report


def run(farmland: int = 5000, serve: bool = True, host: str = "127.0.0.1", port: int = 8000,
        data: Path = DEMO_DATA) -> dict[str, Any]:
    """Everything the README's first command promises, on the embedded database by default."""
    from cli.context import open_stores

    settings = get_settings()
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    manifest = ensure_demo_data(data, farmland)
    stores = open_stores(settings)
    try:
        layers = import_layers(settings, stores, manifest, data)
        summary = build_and_publish(settings, stores)
    finally:
        stores.close()
    screening = screen_demo_projects(settings, manifest, data)
    result = {"version": summary["version"], "blueprint": summary,
              "layers": [{"name": s["name"], "kind": s["kind"], "feature_count": s["feature_count"]}
                         for s in layers],
              "screening": screening}
    emit(result)
    if serve:
        serve_forever(settings, host, port)
    return result


def screen_demo_projects(settings: Settings, manifest: dict[str, Any], root: Path) -> dict[str, Any]:
    """Register the demo projects through the API (as the approval system would) and screen them."""
    from api.demo_seed import seed_projects

    return seed_projects(settings, manifest, root)


def serve_forever(settings: Settings, host: str, port: int) -> None:
    import uvicorn

    from api.app import create_app
    from cli.serve_cmd import logs_to_stderr

    note(f"serving API on http://{host}:{port}/docs and the map on http://{host}:{port}/viewer")
    uvicorn.run(create_app(settings), host=host, port=port, log_level="info", log_config=logs_to_stderr())


def main(farmland: int = typer.Option(5000, help="farmland patches in the generated demo"),
         serve: bool = typer.Option(True, help="serve API + viewer after screening"),
         host: str = "127.0.0.1", port: int = 8000) -> None:
    """Build the Tongling demo blueprint, screen the demo parcels, serve API + viewer."""
    with domain_errors():
        run(farmland=farmland, serve=serve, host=host, port=port)


if __name__ == "__main__":
    typer.run(main)
