"""Tests for the 部标 coordinate TXT reader/writer on a hand-made GBK file and on edited copies of it."""

from __future__ import annotations

from pathlib import Path

import geopandas as gpd
import numpy as np
import pytest
import shapely
from shapely.geometry import MultiPolygon, Polygon, box

from layers.bubiao import (
    BubiaoError,
    BubiaoHeaderError,
    BubiaoNumberError,
    BubiaoPointCountError,
    BubiaoTooFewPointsError,
    BubiaoUnclosedRingError,
    read_bubiao,
    write_bubiao,
)
from layers.crs import gk_epsg
from layers.errors import (
    CRSConflictError,
    CRSMissingError,
    EncodingError,
    OneBlueprintError,
    UnreadableLayerError,
)

HAND_MADE = Path(__file__).resolve().parent.parent / "data" / "bubiao" / "two_parcels_hole.txt"


@pytest.fixture(scope="module")
def hand_text() -> str:
    return HAND_MADE.read_bytes().decode("gbk")


def test_hand_made_file_is_gbk_not_utf8() -> None:
    data = HAND_MADE.read_bytes()
    with pytest.raises(UnicodeDecodeError):
        data.decode("utf-8")
    assert "铜陵经开区" in data.decode("gbk")


def test_reads_two_parcels_with_hole() -> None:
    bf = read_bubiao(HAND_MADE)
    assert bf.crs.to_epsg() == 4527  # 39 prefix on the eastings → CGCS2000 3° zone 39
    assert bf.frame.crs.to_epsg() == 4527
    assert bf.header["带号"] == "39" and bf.header["坐标系"] == "2000国家大地坐标系"
    f = bf.frame.set_index("parcel_id")
    assert list(f.index) == ["TL-A01", "TL-B02"]
    assert f.loc["TL-A01", "name"] == "铜陵经开区标准厂房地块"
    assert f.loc["TL-A01", "use"] == "工业用地" and f.loc["TL-A01", "land_code"] == "0601"
    assert f.loc["TL-B02", "sheet"] == "H50G045062"
    a = f.loc["TL-A01", "geometry"]
    assert isinstance(a, Polygon) and len(a.interiors) == 1
    # 200 m x 150 m minus a 50 m x 30 m hole, written by hand as 2.8500 ha
    assert a.area == pytest.approx(28_500.0, abs=1e-6)
    assert f.loc["TL-A01", "declared_area"] * 10_000 == pytest.approx(a.area, abs=0.01)
    b = f.loc["TL-B02", "geometry"]
    assert b.area == pytest.approx(14_400.0, abs=1e-6)  # trapezoid 120 m wide, 100 m and 140 m high
    # X is the northing: the first point of TL-B02 is X=3420640.25, Y=39513000.5
    assert tuple(b.exterior.coords[0]) == (39513000.5, 3420640.25)
    assert a.is_valid and b.is_valid


def test_reads_text_and_bytes_too(hand_text: str) -> None:
    from_text = read_bubiao(hand_text)
    from_bytes = read_bubiao(HAND_MADE.read_bytes())
    from_file = read_bubiao(HAND_MADE)
    for other in (from_text, from_bytes):
        assert other.frame.geometry.geom_equals_exact(from_file.frame.geometry, 0).all()


def test_utf8_file_reads_the_same(tmp_path: Path, hand_text: str) -> None:
    path = tmp_path / "utf8.txt"
    path.write_bytes(hand_text.encode("utf-8"))
    assert read_bubiao(path).frame["name"].tolist() == read_bubiao(HAND_MADE).frame["name"].tolist()


def test_round_trip_is_exact(tmp_path: Path) -> None:
    first = read_bubiao(HAND_MADE)
    out = write_bubiao(first.frame, tmp_path / "rt.txt", header=first.header)
    second = read_bubiao(out)
    assert second.crs == first.crs
    assert second.header == first.header
    cols = ["parcel_id", "name", "use", "land_code", "declared_area", "sheet"]
    assert second.frame[cols].equals(first.frame[cols])
    assert second.frame.geometry.geom_equals_exact(first.frame.geometry, 0).all()
    # byte-stable: writing what was read gives the same file again
    again = write_bubiao(second.frame, tmp_path / "rt2.txt", header=second.header)
    assert again.read_bytes() == out.read_bytes()
    # and the hand-made file itself, apart from line endings, is what the writer would have produced
    assert out.read_bytes() == HAND_MADE.read_bytes()


def _frame(geoms: list, crs: int = 4548) -> gpd.GeoDataFrame:
    return gpd.GeoDataFrame({"parcel_id": [f"D{i}" for i in range(1, len(geoms) + 1)],
                             "name": ["测试地块"] * len(geoms)}, geometry=geoms, crs=crs)


def test_write_from_plain_gk_adds_prefix_exactly(tmp_path: Path) -> None:
    square = box(500_000.12346, 3_420_000.0, 500_100.0, 3_420_080.0)
    donut = Polygon(box(501_000, 3_421_000, 501_300, 3_421_300).exterior.coords,
                    [box(501_100, 3_421_100, 501_200, 3_421_200).exterior.coords])
    multi = MultiPolygon([box(502_000, 3_422_000, 502_050, 3_422_050),
                          box(502_100, 3_422_000, 502_150, 3_422_050)])
    frame = _frame([square, donut, multi])
    path = write_bubiao(frame, tmp_path / "p.txt")
    text = path.read_bytes().decode("gbk")
    assert "带号=39" in text and ",39500000.1235" in text  # 4 decimals, zone prefix added
    back = read_bubiao(path)
    assert back.crs.to_epsg() == 4527
    shifted = back.frame.geometry.translate(xoff=-39_000_000)
    expected = frame.geometry.apply(lambda g: shapely.set_precision(g, 0.0001, mode="pointwise"))
    for got, want in zip(shifted, expected, strict=True):
        assert got.normalize().equals_exact(want.normalize(), 1e-6)
    assert back.frame.geometry.iloc[1].interiors[0] is not None
    assert back.frame.geometry.iloc[2].geom_type == "MultiPolygon"
    # declared area defaults to the plane area in hectares
    assert back.frame["declared_area"].iloc[1] == pytest.approx(8.0, abs=1e-4)  # 300² − 100² m²


def test_write_without_prefix_reads_back_as_central_meridian_crs(tmp_path: Path) -> None:
    frame = _frame([box(500_000, 3_420_000, 500_100, 3_420_100)], crs=4527).set_geometry(
        [box(39_500_000, 3_420_000, 39_500_100, 3_420_100)], crs=4527)
    path = write_bubiao(frame, tmp_path / "plain.txt", zone_prefix=False)
    back = read_bubiao(path)
    assert back.crs.to_epsg() == 4548
    assert back.frame.geometry.iloc[0].equals_exact(box(500_000, 3_420_000, 500_100, 3_420_100), 1e-9)


def test_write_from_lonlat_goes_to_the_3_degree_zone(tmp_path: Path) -> None:
    frame = _frame([box(117.80, 30.93, 117.81, 30.94)], crs=4490)
    back = read_bubiao(write_bubiao(frame, tmp_path / "ll.txt"))
    assert back.crs.to_epsg() == 4527
    area = back.frame.geometry.iloc[0].area
    assert area == pytest.approx(float(frame.to_crs(4527).area.iloc[0]), rel=1e-6)


def test_write_gbk_unencodable_leaves_nothing(tmp_path: Path) -> None:
    frame = _frame([box(500_000, 3_420_000, 500_100, 3_420_100)]).assign(name="emoji 🏭")
    with pytest.raises(EncodingError):
        write_bubiao(frame, tmp_path / "bad.txt")
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize(("zone_width", "kwargs", "epsg"), [
    (3, {"zone": 39}, 4527), (3, {"zone": 25}, 4513), (3, {"central_meridian": 117}, 4548),
    (3, {"central_meridian": 75}, 4534), (6, {"zone": 20}, 4498), (6, {"central_meridian": 117}, 4509),
])
def test_gk_epsg_table(zone_width: int, kwargs: dict, epsg: int) -> None:
    assert gk_epsg(zone_width, **kwargs) == epsg


def test_six_degree_zone_with_prefix(hand_text: str) -> None:
    text = hand_text.replace("几度分带=3", "几度分带=6").replace("带号=39", "带号=20")
    text = text.replace(",395", ",205")
    assert read_bubiao(text).crs.to_epsg() == 4498  # CGCS2000 GK zone 20 (CM 117E)


# ---------------------------------------------------------------- errors, each naming the line


def _edit(text: str, old: str, new: str) -> str:
    assert old in text
    return text.replace(old, new, 1)


def test_error_unclosed_ring(hand_text: str) -> None:
    lines = hand_text.splitlines()
    last = len(lines) - 1  # closing point of TL-B02
    lines[last] = "J5,1,3420640.2500,39513010.0000"
    with pytest.raises(BubiaoUnclosedRingError) as err:
        read_bubiao("\n".join(lines))
    assert "TL-B02" in err.value.user_message and f"line {len(lines) - 5}" in err.value.user_message
    assert err.value.code == "bubiao_unclosed_ring"


def test_error_too_few_points(hand_text: str) -> None:
    lines = hand_text.splitlines()[:24]  # keep TL-B02's header (line 24), give it a 2-point ring
    lines[23] = lines[23].replace("5,1.4400", "3,1.4400")
    lines += ["J1,1,3420640.2500,39513000.5000", "J2,1,3420600.2500,39513120.5000",
              "J1,1,3420640.2500,39513000.5000"]
    with pytest.raises(BubiaoTooFewPointsError) as err:
        read_bubiao("\n".join(lines))
    assert "TL-B02" in err.value.user_message and err.value.code == "bubiao_too_few_points"


def test_error_non_numeric_coordinate(hand_text: str) -> None:
    bad = _edit(hand_text, "J3,1,3421000.0000,39512200.0000", "J3,1,3421000.0000,3951220O.0000")
    with pytest.raises(BubiaoNumberError) as err:
        read_bubiao(bad)
    assert "line 16" in err.value.user_message and "TL-A01" in err.value.user_message
    assert "Y (easting)" in err.value.user_message


def test_error_point_count_mismatch(hand_text: str) -> None:
    bad = _edit(hand_text, "10,2.8500,TL-A01", "11,2.8500,TL-A01")
    with pytest.raises(BubiaoPointCountError) as err:
        read_bubiao(bad)
    assert "line 13" in err.value.user_message and "11" in err.value.user_message
    assert "10 point line" in err.value.user_message


def test_error_missing_header(hand_text: str) -> None:
    no_attr = hand_text.split("[地块坐标]", 1)[1]
    with pytest.raises(BubiaoHeaderError) as err:
        read_bubiao("[地块坐标]" + no_attr)
    assert "[属性描述]" in err.value.user_message
    with pytest.raises(BubiaoHeaderError, match=r"\[地块坐标\]"):
        read_bubiao(hand_text.replace("[地块坐标]", ""))


def test_error_point_before_parcel_header(hand_text: str) -> None:
    bad = _edit(hand_text, "[地块坐标]\r\n", "[地块坐标]\r\nJ0,1,1.0,2.0\r\n")
    with pytest.raises(BubiaoHeaderError, match="line 13"):
        read_bubiao(bad)


def test_error_missing_zone_without_prefix(hand_text: str) -> None:
    bad = hand_text.replace(",395", ",5").replace("带号=39", "带号=")
    with pytest.raises(CRSMissingError):
        read_bubiao(bad)


def test_error_zone_conflict(hand_text: str) -> None:
    with pytest.raises(CRSConflictError, match="带号=40"):
        read_bubiao(hand_text.replace("带号=39", "带号=40"))


def test_error_bad_file_names_the_file(tmp_path: Path) -> None:
    path = tmp_path / "地块坐标.txt"
    path.write_bytes(b"\xff\xfe\x00garbage")
    with pytest.raises(OneBlueprintError) as err:
        read_bubiao(path)
    assert "地块坐标.txt" in err.value.user_message
    with pytest.raises(UnreadableLayerError, match=r"missing\.txt"):
        read_bubiao(tmp_path / "missing.txt")


def test_duplicate_parcel_ids_rejected(hand_text: str) -> None:
    with pytest.raises(BubiaoError, match="TL-A01"):
        read_bubiao(hand_text.replace("TL-B02", "TL-A01"))


def test_writer_coordinates_have_four_decimals(tmp_path: Path) -> None:
    frame = _frame([Polygon([(500_000.123456, 3_420_000.987654), (500_050.5, 3_420_000.0),
                             (500_020.0, 3_420_040.0)])])
    text = write_bubiao(frame, tmp_path / "d.txt").read_bytes().decode("gbk")
    points = [ln for ln in text.splitlines() if ln.startswith("J")]
    assert points[0] == "J1,1,3420000.9877,39500000.1235"
    assert points[-1].split(",")[0] == "J1"  # closing point repeats the first point number
    coords = np.array([[float(v) for v in ln.split(",")[2:]] for ln in points])
    assert np.array_equal(coords[0], coords[-1])


def test_round_trip_property(tmp_path: Path) -> None:
    """Random star-shaped parcels (some with holes) survive write → read up to the 0.1 mm grid."""
    from hypothesis import given, settings
    from hypothesis import strategies as st

    @settings(max_examples=40, deadline=None)
    @given(st.lists(st.tuples(st.floats(400_000, 600_000), st.floats(3_300_000, 3_500_000),
                              st.floats(5, 500), st.booleans(), st.integers(0, 2**16)),
                    min_size=1, max_size=4))
    def check(specs: list[tuple[float, float, float, bool, int]]) -> None:
        geoms = []
        for x, y, r, hole, seed in specs:
            rng = np.random.default_rng(seed)
            angles = np.sort(rng.uniform(0, 2 * np.pi, 7))
            radii = r * rng.uniform(0.6, 1.0, 7)
            shell = np.column_stack([x + radii * np.cos(angles), y + radii * np.sin(angles)])
            holes = [box(x - r * 0.2, y - r * 0.2, x + r * 0.2, y + r * 0.2).exterior.coords] if hole else []
            geoms.append(shapely.set_precision(Polygon(shell, holes), 0.0001, mode="pointwise"))
        frame = _frame(geoms)
        if not frame.is_valid.all():
            return
        back = read_bubiao(write_bubiao(frame, tmp_path / "h.txt")).frame
        assert list(back["parcel_id"]) == list(frame["parcel_id"])
        moved = back.geometry.translate(xoff=-39_000_000)
        for got, want in zip(moved, frame.geometry, strict=True):
            assert got.equals_exact(want, 1e-6)
            assert got.area == pytest.approx(want.area, abs=0.01)  # areas round-trip within 0.01 m²

    check()


def test_swapped_x_y_columns_name_the_file_and_the_swap(tmp_path: Path) -> None:
    """Eastings in the X column: the zone 'prefix' is a northing digit; the error names file and cause."""
    path = tmp_path / "swapped.txt"
    path.write_text("[属性描述]\n[地块坐标]\n4,,P1,x,面,,,,@\nJ1,1,39500000,3400000\nJ2,1,39500100,3400000\n"
                    "J3,1,39500100,3400100\nJ4,1,39500000,3400000\n", encoding="utf-8")
    with pytest.raises(OneBlueprintError) as err:
        read_bubiao(path)
    assert "swapped.txt" in err.value.user_message and "swapped" in err.value.user_message.split(":", 1)[1]
