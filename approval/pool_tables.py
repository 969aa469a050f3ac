"""approval.pool_tables: the project pool's tables (projects, parcels, linked checks, revisions, reviews)."""

from __future__ import annotations

import sqlalchemy as sa

metadata = sa.MetaData()

# Mirrors runtime/migrations/versions/0002_api.py; geometry is read and written through ST_AsBinary /
# ST_GeomFromWKB so the same statements run on SpatiaLite and PostGIS.
projects = sa.Table(
    "projects",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("code", sa.String(64)),
    sa.Column("name", sa.String(200)),
    sa.Column("project_type", sa.String(64)),
    sa.Column("applicant", sa.String(200)),
    sa.Column("district", sa.String(100)),
    sa.Column("status", sa.String(16)),
    sa.Column("parcel_count", sa.Integer),
    sa.Column("area_m2", sa.Float),
    sa.Column("parcels_checksum", sa.String(64)),
    sa.Column("min_lon", sa.Float),
    sa.Column("min_lat", sa.Float),
    sa.Column("max_lon", sa.Float),
    sa.Column("max_lat", sa.Float),
    sa.Column("latest_check_id", sa.String(64)),
    sa.Column("latest_verdict", sa.String(32)),
    sa.Column("revision", sa.Integer),
    sa.Column("parcels_revision", sa.Integer),  # 0003: bumped when new parcels replace the old
    sa.Column("created_by", sa.String(200)),
    sa.Column("created_at", sa.DateTime(timezone=True)),
    sa.Column("updated_at", sa.DateTime(timezone=True)),
)
project_parcels = sa.Table(
    "project_parcels",
    metadata,
    sa.Column("project_id", sa.Integer),
    sa.Column("seq", sa.Integer),
    sa.Column("parcel_id", sa.String(100)),
    sa.Column("name", sa.String(200)),
    sa.Column("area_m2", sa.Float),
    sa.Column("geom", sa.LargeBinary),
)
project_checks = sa.Table(
    "project_checks",
    metadata,
    sa.Column("project_id", sa.Integer),
    sa.Column("check_id", sa.String(64)),
    sa.Column("verdict", sa.String(32)),
    sa.Column("blueprint_version", sa.String(32)),
    sa.Column("parcels_revision", sa.Integer),  # 0003: which parcel set was screened
    sa.Column("created_by", sa.String(200)),
    sa.Column("created_at", sa.DateTime(timezone=True)),
)
project_parcel_revisions = sa.Table(
    "project_parcel_revisions",
    metadata,
    sa.Column("project_id", sa.Integer),
    sa.Column("revision", sa.Integer),
    sa.Column("parcel_count", sa.Integer),
    sa.Column("area_m2", sa.Float),
    sa.Column("parcels_checksum", sa.String(64)),
    sa.Column("geojson", sa.Text),
    sa.Column("replaced_by", sa.String(200)),
    sa.Column("replaced_at", sa.DateTime(timezone=True)),
)
reviews = sa.Table(
    "reviews",
    metadata,
    sa.Column("review_id", sa.String(64), primary_key=True),
    sa.Column("check_id", sa.String(64)),
    sa.Column("project_id", sa.Integer),
    sa.Column("decided_by", sa.Text),
    sa.Column("decided_at", sa.DateTime(timezone=True)),
    sa.Column("decision", sa.String(32)),
    sa.Column("conditions", sa.JSON),
    sa.Column("reasons", sa.Text),
    sa.Column("recorded_by", sa.String(200)),
    sa.Column("created_at", sa.DateTime(timezone=True)),
)
