"""runtime.settings: the settings the API and the CLI share (pydantic-settings, BLUEPRINT_ prefix)."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Literal

from limits import parse_many
from pydantic import AliasChoices, Field, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict
from pyproj import CRS

from layers.crs import DEFAULT_WORK_EPSG
from layers.model import Limits

Audience = Literal["api", "cli"]
# layers.model.Limits field -> the setting that holds it, per set
SUBMISSION_LIMITS: Mapping[str, str] = {
    "max_bytes": "max_upload_bytes", "max_unzipped_bytes": "max_unzipped_bytes",
    "max_members": "max_members", "max_features": "max_features", "max_vertices": "max_vertices"}
LAYER_LIMITS: Mapping[str, str] = {limit: f"layer_{limit}" for limit in SUBMISSION_LIMITS}
# how a limit is raised, in the words of whoever reads the error
RAISE_HINTS: Mapping[Audience, str] = {
    "cli": "set the environment variable {env} to raise it",
    "api": "the service setting {env} raises it (ask the service administrator)",
}


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
    # which project land uses fit which detailed-plan land uses (default checks/land_use_compat.toml)
    land_use_compat_file: Path | None = None
    tolerance_m: float = Field(default=0.5, ge=0)
    # screening tolerances: overlaps below both are not conflicts
    overlap_tolerance_m2: float = Field(default=1.0, ge=0)
    overlap_tolerance_ratio: float = Field(default=0.001, ge=0, le=1)
    # submission limits: parcels sent for a check (API checks and projects, `blueprint check`,
    # `blueprint parcels convert`)
    max_upload_bytes: int = Field(default=50 * 1024**2, ge=1)
    max_features: int = Field(default=10_000, ge=1)
    max_vertices: int = Field(default=2_000_000, ge=1)
    max_unzipped_bytes: int = Field(default=500 * 1024**2, ge=1)
    max_members: int = Field(default=200, ge=1)
    # plan-layer limits: a department's layer imported by an administrator (API POST /api/v1/layers,
    # `blueprint layers import|inspect`), sized for a province-level layer
    layer_max_bytes: int = Field(default=4 * 1024**3, ge=1)
    layer_max_features: int = Field(default=5_000_000, ge=1)
    layer_max_vertices: int = Field(default=500_000_000, ge=1)
    layer_max_unzipped_bytes: int = Field(default=32 * 1024**3, ge=1)
    layer_max_members: int = Field(default=2_000, ge=1)
    # submissions with more parcels than this are screened by a background job (202 + /jobs/{id})
    job_parcel_threshold: int = Field(default=500, ge=1)
    # ... and so are submissions with more vertices than this (one 10^5-vertex parcel costs as much as
    # hundreds of ordinary ones and would hold a CPU slot the single-parcel checks need)
    job_vertex_threshold: int = Field(default=100_000, ge=1)
    # durable jobs: a worker holds a job under a lease it renews; a job whose lease runs out is taken up
    # again by the next worker. `blueprint serve` runs one worker in process unless this is off.
    job_lease_seconds: float = Field(default=30.0, gt=0)
    # a plan-layer upload larger than this (bytes, streamed to the data dir) is imported by a job (202);
    # smaller ones are imported in the request (201). A build over more stored features than
    # build_job_features is a job too. `Prefer: respond-async` asks for a job whatever the size.
    layer_job_bytes: int = Field(default=8 * 1024**2, ge=0)
    build_job_features: int = Field(default=200_000, ge=0)
    worker_in_process: bool = True
    # security: dev_mode allows the well-known development keys; never in production
    dev_mode: bool = False
    api_keys_file: Path | None = None
    # the map's basemap (viewer.basemap): unset = none, nothing leaves the service; a local .mbtiles or
    # .pmtiles file (raster or vector tiles, served at /viewer/basemap/{z}/{x}/{y}) or a tile URL template
    basemap: str | None = Field(
        default=None, validation_alias=AliasChoices("BLUEPRINT_BASEMAP", "BLUEPRINT_TILE_URL", "basemap"),
        description="basemap under the map: a .mbtiles/.pmtiles file or an http(s) {z}/{x}/{y} template "
                    "(BLUEPRINT_TILE_URL, its former name, is still read)")
    # rate limits (api.ratelimit), in the `limits` notation: "600/minute", "20/second;600/minute"
    rate_limits_enabled: bool = True
    rate_limit_storage: str = Field(default="memory://", description="memory:// (per process) or redis://…")
    rate_limit_roles: dict[str, str] = Field(
        # people's budgets leave room for the map: one pan of the viewer or workbench fetches 20-40 tiles
        default_factory=lambda: {
            "approval_system": "100/second;6000/minute",
            "admin": "50/second;2000/minute",
            "planner": "50/second;2000/minute",
            "reviewer": "50/second;2000/minute",
        },
        description='per API key, by its role; JSON in the environment: {"planner": "5/second"}',
    )
    rate_limit_anonymous: str = Field(default="10/second;120/minute",
                                      description="per client address: requests without a valid key")
    rate_limit_public: str = Field(default="5/second;60/minute", description="per address: /public")
    rate_limit_login: str = Field(default="30/minute;300/hour", description="per address: /viewer/login "
                                  "(an office behind one NAT address signs in together at nine)")
    # a stored API key found in the database is trusted for this long without reading it again; a key
    # revoked through another process (second worker, CLI) keeps working here that long (0 = off)
    key_cache_seconds: float = Field(default=5.0, ge=0, le=300)
    # approval flow: the departments asked for opinions and the working-day calendar (default: weekends off)
    departments_file: Path | None = None
    # a project is cleared only on a check against the latest published blueprint version
    clear_requires_latest: bool = True
    calendar_file: Path | None = None
    # webhooks: how often the outbox is swept into delivery jobs, and how long one delivery may take
    webhook_sweep_seconds: float = Field(default=1.0, gt=0)
    webhook_timeout_seconds: float = Field(default=5.0, gt=0, le=60)
    # HTTP keep-alive: how long `blueprint serve` keeps an idle connection open (uvicorn's default is 5 s).
    # It must outlast the idle time of the clients' connection pools (httpx 5 s, aiohttp 15 s, a load
    # balancer's 60 s): a server that closes an idle connection just as the client reuses it makes that
    # request fail with a reset (bench_load's `ReadError`). 75 s as nginx; an idle connection costs a socket.
    keep_alive_seconds: int = Field(default=75, ge=1, le=3600)
    # the event feed's long polling: the longest a request waits for news (keep below proxy timeouts)
    events_max_wait_seconds: float = Field(default=30.0, ge=0, le=300)

    @field_validator("work_crs_epsg")
    @classmethod
    def _projected(cls, value: int) -> int:
        if not CRS.from_epsg(value).is_projected:
            raise ValueError(f"EPSG:{value} is not projected; the working CRS must be in metres")
        return value

    @field_validator("rate_limit_anonymous", "rate_limit_public", "rate_limit_login")
    @classmethod
    def _limit(cls, value: str) -> str:
        parse_many(value)  # ValueError on a malformed limit, when the settings are read
        return value

    @field_validator("rate_limit_roles")
    @classmethod
    def _role_limits(cls, value: dict[str, str]) -> dict[str, str]:
        for limit in value.values():
            parse_many(limit)
        return value

    @property
    def work_crs(self) -> CRS:
        return CRS.from_epsg(self.work_crs_epsg)

    def submission_limits(self, audience: Audience = "api") -> Limits:
        """Limits for parcels sent for a check; errors name the setting in ``audience``'s words."""
        return self._limits(SUBMISSION_LIMITS, "submission", audience)

    def layer_limits(self, audience: Audience = "api") -> Limits:
        """Limits for a plan layer being imported; errors name the setting in ``audience``'s words."""
        return self._limits(LAYER_LIMITS, "plan-layer", audience)

    def env_name(self, setting: str) -> str:
        """The environment variable of a setting, e.g. ``BLUEPRINT_LAYER_MAX_FEATURES``."""
        return f"{self.model_config.get('env_prefix', '')}{setting}".upper()

    def _limits(self, fields: Mapping[str, str], scope: str, audience: Audience) -> Limits:
        values = {limit: getattr(self, setting) for limit, setting in fields.items()}
        hints = {limit: RAISE_HINTS[audience].format(env=self.env_name(setting))
                 for limit, setting in fields.items()}
        return Limits(**values, scope=scope, raise_with=hints)

    @property
    def resolved_database_url(self) -> str:
        """The database URL; the embedded SpatiaLite file under ``data_dir`` by default."""
        if self.database_url:
            return self.database_url
        return f"sqlite:///{(self.data_dir / 'blueprint.sqlite').resolve()}"


def get_settings() -> Settings:
    """Read settings from the environment (BLUEPRINT_*)."""
    return Settings()
