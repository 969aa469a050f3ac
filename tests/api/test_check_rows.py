"""The fast JSON check path (layers.geojson_rows): same stored results as the general reader; the Screener
file of a published version; the verified-key cache."""

from __future__ import annotations

import json
import time
from typing import Any

import pytest
from shapely.affinity import translate

from approval.audit import Principal
from layers.errors import OneBlueprintError
from layers.geojson_rows import ParcelRows, parcel_rows_from_geojson
from layers.ingest import parcels_from_geojson
from runtime.caches import PublishedCache
from runtime.keys import KeyStore
from runtime.services import Services
from tests.api.conftest import (
    OUTSIDE_PARCEL,
    Api,
    collection,
    rect,
)
from tests.geoms import BOW_TIE, MULTIPART, SLIVER, WITH_HOLE

WHO = Principal("test", "approval_system")
# awkward parcels where the test city has something to say: across the red line / farmland edge (x = 500)
AWKWARD = {
    "bow_tie": translate(BOW_TIE, 450, 100),
    "hole": translate(WITH_HOLE, 450, 300),
    "multipart": translate(MULTIPART, 420, 500),
    "sliver": translate(SLIVER, 399.9, 600),
    "urban": rect(1500, 400, 1600, 500),
}


def screened(services: Services, reader: Any, obj: dict[str, Any]) -> dict[str, Any]:
    parcels = reader(obj, work_crs=services.settings.work_crs, limits=services.limits)
    outcome = services.screen(parcels, "industrial", None, by=WHO)
    stored = json.loads(services.stores.checks.get(outcome.check_id))
    assert stored == json.loads(outcome.text)
    return {k: v for k, v in stored.items() if k != "check_id"}


@pytest.mark.parametrize("name", sorted(AWKWARD))
def test_fast_and_general_paths_store_the_same_result(city: Api, name: str) -> None:
    obj = collection(AWKWARD[name], ids=[f"{name}-1"], names=["地块"])
    assert isinstance(parcel_rows_from_geojson(obj, work_crs=city.services.settings.work_crs), ParcelRows)
    fast = screened(city.services, parcel_rows_from_geojson, obj)
    general = screened(city.services, parcels_from_geojson, obj)
    assert fast == general
    assert fast["parcels"][0]["name"] == "地块"


def test_several_awkward_parcels_in_one_submission(city: Api) -> None:
    obj = collection(*AWKWARD.values(), ids=["10", "2", "A7", "1", "b"])
    fast = screened(city.services, parcel_rows_from_geojson, obj)
    assert fast == screened(city.services, parcels_from_geojson, obj)
    assert [p["parcel_id"] for p in fast["parcels"]] == ["1", "2", "10", "A7", "b"]


def test_http_check_equals_the_general_reader(city: Api) -> None:
    obj = collection(AWKWARD["bow_tie"], ids=["P-1"])
    r = city.post("approval_system", "/api/v1/checks", json={"project_type": "industrial", "parcels": obj})
    assert r.status_code == 201, r.text
    over_http = {k: v for k, v in r.json().items() if k != "check_id"}
    assert over_http == screened(city.services, parcels_from_geojson, obj)


def test_far_outside_the_city_refused_on_both_paths(city: Api) -> None:
    obj = collection(OUTSIDE_PARCEL)
    codes = []
    for reader in (parcel_rows_from_geojson, parcels_from_geojson):
        with pytest.raises(OneBlueprintError) as caught:
            screened(city.services, reader, obj)
        codes.append((caught.value.code, str(caught.value)))
    assert codes[0] == codes[1] and codes[0][0] == "parcel_outside_city"


# ------------------------------------------------------------------------------ the Screener file


def test_screener_file_written_and_read_by_a_new_process(city: Api, monkeypatch: pytest.MonkeyPatch) -> None:
    services = city.services
    version = services.resolve_version(None)
    services.published.screener(version)
    files = list((services.settings.data_dir / "screeners").glob("*.screener"))
    assert [f.name.split("-")[0] for f in files] == [version]
    # a new worker process: its cache reads the file and never loads the pieces
    fresh = PublishedCache(services.stores, services.rules, services.catalogue, services.settings,
                           folder=services.settings.data_dir / "screeners")
    monkeypatch.setattr(services.stores.blueprints, "get", lambda v: pytest.fail("pieces were loaded"))
    screener = fresh.screener(version)
    assert screener.version == version and screener.piece_count == services.published.screener(
        version).piece_count
    monkeypatch.undo()
    monkeypatch.setattr(services, "published", fresh)
    obj = collection(AWKWARD["hole"], ids=["H-1"])
    from_file = screened(services, parcel_rows_from_geojson, obj)
    assert from_file == screened(services, parcels_from_geojson, obj)


def test_unreadable_screener_file_is_rebuilt(city: Api) -> None:
    services = city.services
    version = services.resolve_version(None)
    services.published.screener(version)
    (path,) = (services.settings.data_dir / "screeners").glob("*.screener")
    path.write_bytes(b"not a pickle")
    fresh = PublishedCache(services.stores, services.rules, services.catalogue, services.settings,
                           folder=path.parent)
    assert fresh.screener(version).version == version
    assert path.read_bytes() != b"not a pickle"  # written again


# ------------------------------------------------------------------------------ the key cache


def test_key_revoked_elsewhere_lives_at_most_the_cache_time(city: Api) -> None:
    engine = city.services.engine
    here, elsewhere = KeyStore(engine, cache_seconds=0.5), KeyStore(engine)
    key, record = elsewhere.create("cached", "reviewer")
    assert here.verify(key) is not None and here.cached(key) is not None
    assert here.cached(key[:-1] + ("x" if key[-1] != "x" else "y")) is None  # the secret is still compared
    elsewhere.revoke(record["key_id"])  # another process
    assert here.verify(key) is not None  # still cached: the documented trade-off
    time.sleep(0.6)
    assert here.cached(key) is None and here.verify(key) is None


def test_revoking_in_this_process_clears_the_cache(city: Api) -> None:
    store = KeyStore(city.services.engine, cache_seconds=60)
    key, record = store.create("cached", "reviewer")
    assert store.verify(key) is not None
    assert store.revoke(record["key_id"])
    assert store.cached(key) is None and store.verify(key) is None


def test_no_cache_reads_the_database_every_time(city: Api) -> None:
    here, elsewhere = KeyStore(city.services.engine), KeyStore(city.services.engine)
    key, record = elsewhere.create("uncached", "reviewer")
    assert here.verify(key) is not None and here.cached(key) is None
    elsewhere.revoke(record["key_id"])
    assert here.verify(key) is None


