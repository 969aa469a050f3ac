"""api.settings: the settings the API and the CLI share (pydantic-settings, BLUEPRINT_ prefix)."""

from __future__ import annotations

from pathlib import Path

from pydantic import Field, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict
from pyproj import CRS

from layers.crs import DEFAULT_WORK_EPSG


class Settings(BaseSettings):
    """Built by :func:`get_settings` (or directly in tests), never at import."""

    model_config = SettingsConfigDict(env_prefix="BLUEPRINT_", env_file=None, extra="ignore")

    data_dir: Path = Field(default=Path("var"), description="where the embedded SpatiaLite database lives")
    database_url: str | None = Field(
        default=None, description="SQLAlchemy URL; unset = embedded SpatiaLite under data_dir")
    work_crs_epsg: int = DEFAULT_WORK_EPSG
    catalogue_file: Path | None = None
    precedence_file: Path | None = None
    rules_file: Path | None = None
    tolerance_m: float = Field(default=0.5, ge=0)
    # screening tolerances: overlaps below both are not conflicts
    overlap_tolerance_m2: float = Field(default=1.0, ge=0)
    overlap_tolerance_ratio: float = Field(default=0.001, ge=0, le=1)
    # upload limits
    max_upload_bytes: int = 50 * 1024 * 1024
    max_features: int = 10_000
    max_vertices: int = 2_000_000
    max_unzipped_bytes: int = 500 * 1024 * 1024
    # submissions with more parcels than this are screened by a background job (202 + /jobs/{id})
    job_parcel_threshold: int = Field(default=500, ge=1)
    # durable jobs: a worker holds a job under a lease it renews; a job whose lease runs out is taken up
    # again by the next worker. `blueprint serve` runs one worker in process unless this is off.
    job_lease_seconds: float = Field(default=30.0, gt=0)
    worker_in_process: bool = True
    # security: dev_mode allows the well-known development keys; never in production
    dev_mode: bool = False
    api_keys_file: Path | None = None
    tile_url: str | None = Field(default=None, description="optional basemap tile URL for the viewer")

    @field_validator("work_crs_epsg")
    @classmethod
    def _projected(cls, value: int) -> int:
        if not CRS.from_epsg(value).is_projected:
            raise ValueError(f"EPSG:{value} is not projected; the working CRS must be in metres")
        return value

    @property
    def work_crs(self) -> CRS:
        return CRS.from_epsg(self.work_crs_epsg)

    @property
    def resolved_database_url(self) -> str:
        """The database URL; the embedded SpatiaLite file under ``data_dir`` by default."""
        if self.database_url:
            return self.database_url
        return f"sqlite:///{(self.data_dir / 'blueprint.sqlite').resolve()}"


def get_settings() -> Settings:
    """Read settings from the environment (BLUEPRINT_*)."""
    return Settings()
