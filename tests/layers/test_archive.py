"""Hostile and awkward zips: traversal, absolute paths, symlinks, bombs, too many members, ambiguity."""

from __future__ import annotations

import stat
import tempfile
import zipfile
from pathlib import Path

import pytest

from layers.archive import extract_zip, unpacked
from layers.errors import AmbiguousLayerError, HostileFileError, UnreadableLayerError
from layers.formats import NoSuchLayerError
from layers.ingest import read_layer, read_parcels
from layers.model import Limits


def _zip(path: Path, members: dict[str, bytes], **kw) -> Path:
    with zipfile.ZipFile(path, "w", compression=zipfile.ZIP_DEFLATED, **kw) as archive:
        for name, data in members.items():
            archive.writestr(name, data)
    return path


@pytest.mark.parametrize("name", ["../evil.shp", "a/../../evil.shp", "..\\evil.shp", "/etc/evil.shp",
                                  "C:/evil.shp"])
def test_traversal_and_absolute_members_are_refused(tmp_path, work_crs, name):
    archive = _zip(tmp_path / "bad.zip", {name: b"x", "ok.txt": b"y"})
    with pytest.raises(HostileFileError, match=r"bad\.zip"):
        read_parcels(archive, work_crs=work_crs)
    assert not (tmp_path / "evil.shp").exists()


def test_symlink_member_is_refused(tmp_path, work_crs):
    info = zipfile.ZipInfo("link.shp")
    info.external_attr = (stat.S_IFLNK | 0o777) << 16
    with zipfile.ZipFile(tmp_path / "link.zip", "w") as archive:
        archive.writestr(info, "/etc/passwd")
    with pytest.raises(HostileFileError, match="symbolic link"):
        read_parcels(tmp_path / "link.zip", work_crs=work_crs)


def test_total_unzipped_size_over_the_limit(tmp_path, work_crs):
    archive = _zip(tmp_path / "big.zip", {"a.geojson": b" " * 600_000, "b.geojson": b" " * 600_000})
    with pytest.raises(HostileFileError, match=r"unpacks to .* bytes or more, more than the upload limit"):
        read_parcels(archive, work_crs=work_crs, limits=Limits(max_unzipped_bytes=1_000_000))


def test_zip_bomb_ratio(tmp_path, work_crs):
    archive = _zip(tmp_path / "bomb.zip", {"bomb.geojson": b"\0" * (8 * 1024 * 1024)})
    assert archive.stat().st_size < 100_000
    with pytest.raises(HostileFileError, match="zip bomb"):
        read_parcels(archive, work_crs=work_crs)


def test_lying_header_cannot_write_more_than_declared(tmp_path):
    archive = _zip(tmp_path / "liar.zip", {"a.geojson": b"{" * 5000})
    data = bytearray(archive.read_bytes())
    # shrink the declared uncompressed size (central directory entry, offset 24) to 10 bytes
    central = data.rfind(b"PK\x01\x02")
    data[central + 24:central + 28] = (10).to_bytes(4, "little")
    archive.write_bytes(bytes(data))
    with pytest.raises((HostileFileError, UnreadableLayerError)):
        extract_zip(archive, tmp_path / "out", Limits())


def test_too_many_members(tmp_path, work_crs):
    archive = _zip(tmp_path / "many.zip", {f"f{i}.txt": b"x" for i in range(20)})
    with pytest.raises(HostileFileError, match="20 members"):
        read_parcels(archive, work_crs=work_crs, limits=Limits(max_members=10))


def test_truncated_zip(tmp_path, red_frame, work_crs):
    red_frame.to_file(tmp_path / "red.shp", encoding="UTF-8")
    archive = tmp_path / "red.zip"
    with zipfile.ZipFile(archive, "w", compression=zipfile.ZIP_DEFLATED) as z:
        for part in tmp_path.glob("red.*"):
            if part.suffix != ".zip":
                z.write(part, part.name)
    archive.write_bytes(archive.read_bytes()[: archive.stat().st_size // 2])
    with pytest.raises(UnreadableLayerError, match=r"red\.zip"):
        read_parcels(archive, work_crs=work_crs)


def test_two_shapefiles_need_a_layer(tmp_path, red_frame, catalogue, work_crs):
    src = tmp_path / "src"
    src.mkdir()
    red_frame.to_file(src / "红线.shp", encoding="UTF-8")
    red_frame.iloc[:1].to_file(src / "farmland.shp", encoding="UTF-8")
    archive = tmp_path / "two.zip"
    with zipfile.ZipFile(archive, "w") as z:
        for part in src.iterdir():
            z.write(part, part.name)
        z.writestr("说明.txt", b"read me")
    with pytest.raises(AmbiguousLayerError) as err:
        read_layer(archive, "ecological_redline", work_crs=work_crs, catalogue=catalogue)
    assert "红线" in err.value.user_message and "farmland" in err.value.user_message
    layer = read_layer(archive, "ecological_redline", work_crs=work_crs, catalogue=catalogue, layer="红线")
    assert len(layer.frame) == 3 and layer.name == "红线"
    with pytest.raises(NoSuchLayerError, match="nope"):
        read_layer(archive, "ecological_redline", work_crs=work_crs, catalogue=catalogue, layer="nope")


def test_zip_without_a_dataset(tmp_path, work_crs):
    from layers.errors import UnsupportedFormatError

    archive = _zip(tmp_path / "docs.zip", {"readme.txt": b"hello", "a.doc": b"x"})
    with pytest.raises(UnsupportedFormatError, match=r"docs\.zip"):
        read_parcels(archive, work_crs=work_crs)


def test_temp_dir_is_removed_even_on_error(tmp_path, monkeypatch):
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path / "tmp"))
    (tmp_path / "tmp").mkdir()
    archive = _zip(tmp_path / "a.zip", {"a.geojson": b"{}"})
    with pytest.raises(RuntimeError), unpacked(archive, Limits()) as files:
        assert files[0].exists()
        raise RuntimeError("boom")
    assert list((tmp_path / "tmp").iterdir()) == []


def test_member_clashing_with_a_folder_is_a_domain_error(tmp_path, work_crs):
    archive = _zip(tmp_path / "clash.zip", {"a.geojson": b"{}", "a.geojson/b.geojson": b"{}"})
    with pytest.raises(HostileFileError, match=r"clash\.zip.*a\.geojson/b\.geojson"):
        read_parcels(archive, work_crs=work_crs)
