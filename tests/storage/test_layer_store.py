"""LayerStore on SpatiaLite and PostGIS: round trip, duplicates, deletion rules."""

from __future__ import annotations

import geopandas as gpd
import pytest
import sqlalchemy as sa
from pyproj import CRS

from blueprint.store import BlueprintStore
from layers.errors import CRSMismatchError
from layers.store import LayerExistsError, LayerInUseError, LayerNotFoundError, LayerStore
from tests.geoms import X0, Y0, square
from tests.storage.helpers import blueprint, boundary_layer, farmland_layer


def test_round_trip_keeps_geometry_attributes_and_report(engine: sa.Engine) -> None:
    store = LayerStore(engine)
    original = farmland_layer()
    summary = store.save(original, by="李四")
    assert summary["feature_count"] == 3
    assert summary["status"] == "draft" and summary["created_by"] == "李四"
    assert summary["repairs"] == [r.as_dict() for r in original.repairs]

    loaded = store.get(original.name)
    assert CRS.from_user_input(loaded.frame.crs).to_epsg() == 4548
    assert list(loaded.frame.columns) == list(original.frame.columns)
    assert loaded.frame.geometry.geom_equals_exact(original.frame.geometry, tolerance=0).all()
    assert list(loaded.frame.geom_type) == list(original.frame.geom_type)
    assert loaded.frame["名称"].tolist()[:2] == ["基本农田保护区", "铜官区 农田"]
    assert loaded.frame["名称"].isna().tolist() == [False, False, True]
    assert loaded.frame["count"].dtype == "int64" and loaded.frame["count"].tolist() == [1, 2, 3]
    assert loaded.frame["area"].tolist()[0] == 1.5 and loaded.frame["area"].isna().tolist()[1]
    assert (loaded.kind, loaded.source, loaded.checksum, loaded.crs_in, loaded.encoding) == (
        original.kind, original.source, original.checksum, original.crs_in, original.encoding)
    assert loaded.repairs == original.repairs and loaded.notes == original.notes
    assert loaded.meta == {"year": 2024}
    assert loaded.summary() == original.summary()


def test_list_and_load_all(engine: sa.Engine) -> None:
    store = LayerStore(engine)
    store.save(farmland_layer())
    store.save(boundary_layer())
    listed = store.list()
    assert [s["kind"] for s in listed] == ["city_boundary", "permanent_farmland"]
    assert listed[1]["repair_count"] == 1 and "repairs" not in listed[1]
    assert sorted(layer.name for layer in store.load_all()) == sorted(["城市边界", "永久基本农田2024"])


def test_duplicate_name_is_refused_unless_replaced(engine: sa.Engine) -> None:
    store = LayerStore(engine)
    store.save(farmland_layer())
    with pytest.raises(LayerExistsError) as err:
        store.save(farmland_layer(checksum="other"))
    assert err.value.code == "layer_exists"
    store.save(farmland_layer(checksum="other"), replace=True)
    assert store.get("永久基本农田2024").checksum == "other"
    assert len(store.list()) == 1


def test_get_and_delete_missing_layer(engine: sa.Engine) -> None:
    store = LayerStore(engine)
    with pytest.raises(LayerNotFoundError):
        store.get("nope")
    with pytest.raises(LayerNotFoundError):
        store.delete("nope")


def test_delete_draft_layer_removes_its_features(engine: sa.Engine) -> None:
    store = LayerStore(engine)
    store.save(farmland_layer())
    store.delete("永久基本农田2024")
    assert store.list() == []
    with engine.connect() as conn:
        assert conn.execute(sa.text("SELECT count(*) FROM layer_features")).scalar_one() == 0


def test_layer_used_by_published_blueprint_cannot_be_deleted_or_replaced(engine: sa.Engine) -> None:
    layers, blueprints = LayerStore(engine), BlueprintStore(engine)
    farmland = farmland_layer()
    layers.save(farmland)
    layers.save(boundary_layer())
    blueprints.save_draft(blueprint("v1", layers=(farmland,)))
    layers.delete("城市边界")  # not in any blueprint: fine
    blueprints.publish("v1", by="admin")
    assert layers.summary(farmland.name)["status"] == "used"
    with pytest.raises(LayerInUseError):
        layers.delete(farmland.name)
    with pytest.raises(LayerInUseError):
        layers.save(farmland, replace=True)
    assert len(layers.get(farmland.name).frame) == 3


def test_layer_in_another_crs_is_refused(engine: sa.Engine) -> None:
    layer = farmland_layer()
    layer.frame = gpd.GeoDataFrame(layer.frame).to_crs(4527)
    with pytest.raises(CRSMismatchError):
        LayerStore(engine).save(layer)
    assert LayerStore(engine).list() == []


def test_spatial_index_serves_bbox_queries(engine: sa.Engine) -> None:
    LayerStore(engine).save(farmland_layer())
    box = square(290, 290, 5).wkt  # only touches F3
    with engine.connect() as conn:
        hits = conn.execute(sa.text(
            "SELECT feature_id FROM layer_features WHERE ST_Intersects(geom, ST_GeomFromText(:w, 4548))"),
            {"w": box}).scalars().all()
    assert hits == []
    box = square(310, 310, 5).wkt
    with engine.connect() as conn:
        hits = conn.execute(sa.text(
            "SELECT feature_id FROM layer_features WHERE ST_Intersects(geom, ST_GeomFromText(:w, 4548))"),
            {"w": box}).scalars().all()
    assert hits == ["F3"]


def test_awkward_attribute_text_and_no_attributes(engine: sa.Engine) -> None:
    store = LayerStore(engine)
    layer = farmland_layer()
    layer.frame["名称"] = ['a,b "q"', "line\nbreak\\N", ""]
    store.save(layer)
    assert store.get(layer.name).frame["名称"].tolist() == ['a,b "q"', "line\nbreak\\N", ""]
    store.save(boundary_layer())  # feature_id and geometry only
    assert list(store.get("城市边界").frame.columns) == ["feature_id", "geometry"]


def test_feature_pages_and_bbox(engine: sa.Engine) -> None:
    store = LayerStore(engine)
    store.save(farmland_layer())
    assert store.count("永久基本农田2024") == 3
    page = store.features("永久基本农田2024", limit=2, offset=1)
    assert page["feature_id"].tolist() == ["F2", "F3"] and page["count"].tolist() == [2, 3]
    near_f3 = (X0 + 310, Y0 + 310, X0 + 315, Y0 + 315)
    assert store.features("永久基本农田2024", bbox=near_f3)["feature_id"].tolist() == ["F3"]
    assert store.count("永久基本农田2024", bbox=near_f3) == 1
    in_the_hole = (X0 + 55, Y0 + 55, X0 + 70, Y0 + 70)  # inside F1's outline, in its hole, off F2
    assert store.count("永久基本农田2024", bbox=in_the_hole) == 0
