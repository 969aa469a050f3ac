"""api.demo_seed: register and screen the demo projects through the real HTTP API, as a client would."""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path
from typing import Any

import geopandas as gpd
import pandas as pd
from fastapi.testclient import TestClient

from api.app import create_app
from layers.crs import to_output
from layers.errors import OneBlueprintError
from layers.ingest import read_parcels
from runtime.keys import DEV_KEYS
from runtime.settings import Settings

PLANNER_KEY = next(key for key, role in DEV_KEYS.items() if role == "planner")
ADMIN_KEY = next(key for key, role in DEV_KEYS.items() if role == "admin")
# 策划生成: a few projects in planning, each with an opinion round (answers recorded by the admin on the
# departments' behalf, as for answers given on paper; one department left to answer or run overdue)
PLANNING_ROUND = ("development_reform", "natural_resources", "ecology_environment", "water")
PLANNING_ANSWERS = (
    ("development_reform", {"answer": "agree"}),
    ("natural_resources", {"answer": "agree_with_conditions", "conditions": ["按控规核定用地范围"]}),
    ("ecology_environment", {"answer": "no_opinion"}),
)


class DemoSeedError(OneBlueprintError):
    code = "demo_seed_error"


def demo_parcels(settings: Settings, manifest: dict[str, Any], root: Path) -> gpd.GeoDataFrame:
    """Every demo parcel from every file the manifest lists (GeoJSON, 部标 TXT, DXF), in EPSG:4326."""
    frames = []
    for entry in manifest["parcels"]:
        parcels = read_parcels(root / entry["path"], work_crs=settings.work_crs, crs=entry.get("crs"),
                               encoding=entry.get("encoding"))
        frame = parcels.frame[["parcel_id", "geometry"]].copy()
        expected = entry.get("parcel_ids", [])
        if set(frame["parcel_id"]) != set(expected) and len(frame) == len(expected):
            frame["parcel_id"] = expected  # CAD drawings carry no parcel ids; the manifest names them
        frames.append(frame)
    merged = gpd.GeoDataFrame(pd.concat(frames, ignore_index=True), crs=settings.work_crs)
    return to_output(merged)


def feature_collection(parcels: gpd.GeoDataFrame) -> dict[str, Any]:
    return json.loads(parcels.to_json(drop_id=True))


def seed_projects(settings: Settings, manifest: dict[str, Any], root: Path) -> dict[str, Any]:
    """Create each demo project with its parcels and screen it; skip projects that are already screened."""
    if not settings.dev_mode:
        raise DemoSeedError("the demo seeds projects with the development keys: set BLUEPRINT_DEV_MODE=true")
    projects = json.loads((root / manifest["projects"]).read_text(encoding="utf-8"))
    parcels = demo_parcels(settings, manifest, root).set_index("parcel_id", drop=False)
    verdicts: Counter[str] = Counter()
    results = []
    with TestClient(create_app(settings)) as client:
        client.headers["X-API-Key"] = PLANNER_KEY
        for project in projects:
            outcome = seed_one(client, project, parcels.loc[project["parcel_ids"]])
            verdicts[outcome["verdict"]] += 1
            results.append(outcome)
        planning = [seed_planning(client, p, parcels.loc[p["parcel_ids"]]) for p in projects[:3]]
    return {"projects": len(projects), "verdicts": dict(sorted(verdicts.items())), "checks": results,
            "planning": planning}


def seed_planning(client: TestClient, project: dict[str, Any], parcels: gpd.GeoDataFrame) -> dict[str, Any]:
    """A planning twin of a demo project (serial 9xxxxx) with one opinion round, three of four answered."""
    code = project["code"][:-6] + "9" + project["code"][-5:]
    if client.get(f"/api/v1/projects/{code}").status_code == 404:
        body = {key: project[key] for key in ("project_type", "applicant", "district")}
        created = client.post("/api/v1/projects", json={
            **body, "code": code, "name": f"{project['name']}（策划）", "stage": "planning",
            "parcels": feature_collection(parcels)})
        if created.status_code != 201:
            return {"code": code, "error": created.json()}
        opened = client.post(f"/api/v1/projects/{code}/rounds", json={
            "departments": list(PLANNING_ROUND), "working_days": 5, "note": "前期策划意见征询（演示）"})
        if opened.status_code != 201:
            return {"code": code, "error": opened.json()}
        path = f"/api/v1/projects/{code}/rounds/{opened.json()['round_id']}/opinions"
        for department, answer in PLANNING_ANSWERS:
            client.post(path, json={"department": department, **answer}, headers={"X-API-Key": ADMIN_KEY})
    rounds = client.get(f"/api/v1/projects/{code}/opinions").json()["rounds"]
    return {"code": code, "round": rounds[-1]["summary"] if rounds else None}


def seed_one(client: TestClient, project: dict[str, Any], parcels: gpd.GeoDataFrame) -> dict[str, Any]:
    code = project["code"]
    existing = client.get(f"/api/v1/projects/{code}")
    if existing.status_code == 404:
        body = {key: project[key] for key in ("code", "name", "project_type", "applicant", "district")}
        created = client.post("/api/v1/projects", json={**body, "parcels": feature_collection(parcels)})
        if created.status_code != 201:
            return {"code": code, "verdict": "error", "error": created.json()}
    # a project with a declared plan (申报指标) is screened against the detailed plan's conditions too
    body = {"declared": project["declared"]} if project.get("declared") else None
    checked = client.post(f"/api/v1/projects/{code}/checks", json=body,
                          headers={"Idempotency-Key": f"demo-{code}"})
    if checked.status_code not in (200, 201):
        return {"code": code, "verdict": "error", "error": checked.json()}
    result = checked.json()
    outcome = {"code": code, "check_id": result["check_id"], "verdict": result["verdict"]}
    breached = sorted({f["indicator"] for p in result["parcels"] for c in p.get("conditions") or []
                       for f in c["findings"] if f["ok"] is False})
    exempt = sorted({a["type"] for p in result["parcels"] for a in p.get("assessments") or []
                     if a["status"] == "exempt"})
    if breached or exempt:  # what the demo shows beyond the lines: 指标超出, 可复用的区域评估
        outcome.update(breached=breached, exempt=exempt)
    return outcome
