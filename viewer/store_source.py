"""viewer.store_source: the viewer's storage port (viewer.source.ViewerSource) over the services, and the
tile-archive job that the service and the worker both run."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import geopandas as gpd
from pyproj import CRS

from approval.rescreen import TILES_KIND
from blueprint.errors import BlueprintNotFoundError, NoPublishedBlueprintError
from checks.errors import CheckNotFoundError
from layers.crs import OUTPUT_CRS, to_output, transformer
from runtime.geojson import feature_collection
from runtime.services import Services
from viewer.archive import build_version_tiles


class StoreViewerSource:
    """Implements :class:`viewer.source.ViewerSource`; every method is thread-safe (stores open connections
    per call, published blueprints come from the shared cache)."""

    def __init__(self, services: Services) -> None:
        self.services = services

    def work_crs(self) -> CRS:
        return self.services.settings.work_crs

    def versions(self) -> list[dict[str, Any]]:
        return self.services.stores.blueprints.versions()

    def latest_version(self) -> str | None:
        try:
            return self.services.stores.blueprints.latest_published_version()
        except NoPublishedBlueprintError:
            return None

    def _blueprint(self, version: str) -> Any:
        try:
            return self.services.published.blueprint(version)
        except BlueprintNotFoundError as exc:
            raise KeyError(version) from exc

    def pieces(self, version: str) -> gpd.GeoDataFrame:
        return self._blueprint(version).pieces

    def conflicts(self, version: str) -> gpd.GeoDataFrame:
        return self._blueprint(version).conflicts

    def boundary(self, version: str) -> gpd.GeoDataFrame | None:
        """The features of the boundary layer ``version`` was built from (their names label the map);
        None when it had none, or the stored layer of that name now holds other data."""
        from layers.store import LayerNotFoundError

        groups = {k.key: k.group for k in self.services.catalogue.values()}
        ref = next((r for r in self._blueprint(version).layers if groups.get(r.kind) == "boundary"), None)
        if ref is None:
            return None
        try:
            layer = self.services.stores.layers.get(ref.name)
        except LayerNotFoundError:
            return None
        return layer.frame if layer.checksum == ref.checksum else None

    def project_parcels(self) -> gpd.GeoDataFrame:
        """Every project's current parcels (the pool), working CRS: the map's ``parcels`` layer."""
        return self.services.projects.parcels()

    def city_bounds_4326(self) -> tuple[float, float, float, float]:
        """The extent of the latest published version (else the newest draft, else the work CRS's area)."""
        version = self.latest_version()
        if version is None:
            versions = self.versions()
            version = str(versions[-1]["version"]) if versions else None
        if version is not None:
            pieces = self.pieces(version)
            if len(pieces):
                to_84 = transformer(CRS.from_user_input(pieces.crs), OUTPUT_CRS)
                west, south, east, north = to_84.transform_bounds(*pieces.total_bounds)
                return float(west), float(south), float(east), float(north)
        area = self.work_crs().area_of_use
        if area is None:
            return (73.0, 18.0, 135.0, 54.0)  # China
        return (area.west, area.south, area.east, area.north)

    def search_projects(self, q: str, limit: int = 20) -> list[dict[str, Any]]:
        items, _ = self.services.projects.search(q=q or None, limit=max(1, min(limit, 500)))
        return [{k: p[k] for k in ("code", "name", "project_type", "district", "status")} for p in items]

    def public_projects(self, limit: int, offset: int) -> tuple[list[dict[str, Any]], int]:
        items, total = self.services.projects.search(limit=max(1, min(limit, 500)), offset=max(0, offset))
        keys = ("code", "name", "district", "status", "created_at", "updated_at")
        return [{k: p[k] for k in keys} for p in items], total

    def check(self, check_id: str) -> dict[str, Any] | None:
        try:
            result: dict[str, Any] = json.loads(self.services.stores.checks.get(check_id))
        except CheckNotFoundError:
            return None
        return result

    def check_created_at(self, check_id: str) -> str | None:
        """When the check was stored (ISO 8601, UTC), ``None`` if unknown."""
        try:
            created: str | None = self.services.stores.checks.meta(check_id).get("created_at")
        except CheckNotFoundError:
            return None
        return created

    def project_for_check(self, check_id: str) -> dict[str, Any] | None:
        project = self.services.projects.project_for_check(check_id)
        if project is None:
            return None
        parcels = self.services.projects.parcels(project["code"])
        return {
            **{k: project[k] for k in ("code", "name", "project_type", "applicant", "district", "status")},
            "parcels": feature_collection(
                to_output(parcels), id_column="parcel_id", properties=("parcel_id", "name", "area_m2")
            ),
            "reviews": [
                {k: r[k] for k in ("decided_by", "decided_at", "decision", "conditions", "reasons")}
                for r in self.services.projects.reviews(check_id=check_id)
            ],
        }


def register_tile_jobs(services: Services, source: StoreViewerSource | None = None) -> None:
    """The viewer's durable job kinds: the MVT archive of a version, queued by every publish (the service
    and ``blueprint worker`` both register them)."""
    source = source or StoreViewerSource(services)
    groups = {k.key: k.group for k in services.catalogue.values()}
    out_dir = services.settings.data_dir / "tiles"

    def build_tiles(job: dict[str, Any], folder: Path, progress: Any) -> str:
        version = str(job["payload"]["version"])
        build_version_tiles(source, version, out_dir, groups=groups)
        return f"tiles:{version}"

    services.register_job_handler(TILES_KIND, build_tiles)
