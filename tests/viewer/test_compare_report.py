"""Compare two blueprint versions; the printable report of a check (HTML; the PDF is in test_browser)."""

from __future__ import annotations

import re

import pytest
from fastapi.testclient import TestClient

from layers.catalogue import load_catalogue
from tests.viewer.conftest import V1_PIECES, V2_PIECES, MemorySource, make_app, pieces_frame, signed_in
from viewer.compare import diff_geojson, diff_pieces
from viewer.report import report_context

URL = re.compile(r"(?:https?:)?//[A-Za-z0-9.-]+\.[A-Za-z]{2,}")
TAKEN_M2 = 200 * 400  # v2's urban boundary took this much farmland


def test_diff_by_kind_finds_the_farmland_the_city_took() -> None:
    diff = diff_pieces(pieces_frame(V1_PIECES), pieces_frame(V2_PIECES), load_catalogue(), "v1", "v2")
    by_kind = {k.kind: k for k in diff.kinds}
    for kind in ("permanent_farmland", "agricultural_space"):
        assert by_kind[kind].removed_m2 == pytest.approx(TAKEN_M2)
        assert by_kind[kind].added_m2 == pytest.approx(0, abs=1e-6)
        assert by_kind[kind].area_b_m2 - by_kind[kind].area_a_m2 == pytest.approx(-TAKEN_M2)
    for kind in ("urban_boundary", "urban_space"):
        assert by_kind[kind].added_m2 == pytest.approx(TAKEN_M2)
        assert by_kind[kind].removed_m2 == pytest.approx(0, abs=1e-6)
    for kind in ("ecological_redline", "ecological_space", "geohazard_zone", "city_boundary"):
        assert not by_kind[kind].changed, kind
    assert [k.kind for k in diff.kinds][:3] == list(load_catalogue())[:3], "catalogue order"


def test_diff_of_a_version_with_itself_is_empty() -> None:
    diff = diff_pieces(pieces_frame(V1_PIECES), pieces_frame(V1_PIECES), load_catalogue())
    assert not any(k.changed for k in diff.kinds)
    assert diff_geojson(diff) == {"type": "FeatureCollection", "features": []}


def test_diff_geojson_has_the_changed_areas_in_lon_lat() -> None:
    diff = diff_pieces(pieces_frame(V1_PIECES), pieces_frame(V2_PIECES), load_catalogue())
    features = diff_geojson(diff)["features"]
    changes = sorted((f["properties"]["kind"], f["properties"]["change"]) for f in features)
    assert changes == [("agricultural_space", "removed"), ("permanent_farmland", "removed"),
                       ("urban_boundary", "added"), ("urban_space", "added")]
    lon, lat = features[0]["geometry"]["coordinates"][0][0]
    assert 116.9 < lon < 117.1 and 30.8 < lat < 31.0


def test_compare_page(client: TestClient) -> None:
    html = client.get("/viewer/compare?a=v1&b=v2").text
    assert "蓝图版本对比" in html and "Compare blueprint versions" in html
    row = re.search(r'<tr class="changed" data-kind="permanent_farmland">(.*?)</tr>', html, re.S)
    assert row and "80,000.00" in row.group(1) and "-80,000.00" in row.group(1)
    assert 'data-kind="ecological_redline"' in html and '<tr class="" data-kind="ecological_redline">' in html
    assert URL.findall(html) == []
    assert 'id="no-change"' not in html
    assert 'id="no-change"' in client.get("/viewer/compare?a=v1&b=v1").text
    assert client.get("/viewer/compare").status_code == 200  # the form alone
    assert client.get("/viewer/compare?a=v1&b=v9").status_code == 404


def test_report_context_and_map_image() -> None:
    context = report_context(MemorySource(), "CHK-0001", load_catalogue())
    assert context["check"]["blueprint_version"] == "v1"
    assert context["verdict_label"] == ("冲突", "Conflict")
    assert context["map_png"] and len(context["map_png"]) > 5000
    assert [h["kind"] for h in context["parcels"][0]["hits"]] == ["ecological_redline", "permanent_farmland"]
    legend = {k.key for k in context["legend"]}
    assert legend >= {"ecological_redline", "permanent_farmland", "urban_boundary"}
    with pytest.raises(KeyError):
        report_context(MemorySource(), "nope", load_catalogue())


def test_report_html(client: TestClient) -> None:
    response = client.get("/viewer/reports/CHK-0001.html")
    assert response.status_code == 200
    html = response.text
    assert "联合审查报告" in html and "Joint review report" in html
    assert '<td id="blueprint-version">v1</td>' in html
    assert "冲突 Conflict" in html
    assert "地块占用生态保护红线" in html and "forbidden for industrial projects" in html
    assert "铜陵新材料产业园一期" in html and "不同意 Rejected" in html  # project and review decision
    assert "生态保护红线" in html and "Permanent basic farmland" in html
    assert 'src="data:image/png;base64,' in html
    assert URL.findall(html) == [], "the report is self-contained: printable with no network"
    assert client.get("/viewer/reports/nope.html").status_code == 404


def test_report_of_a_check_outside_the_pool() -> None:
    source = MemorySource()
    source.project_for_check = lambda check_id: None  # type: ignore[method-assign]
    html = signed_in(make_app(source)).get("/viewer/reports/CHK-0001.html").text
    assert "库外检查" in html
    assert 'src="data:image/png;base64,' in html, "the overlaps alone still make a map"
