"""layers.land_use: the national land/sea use codes (用地用海分类) shipped as data, with their names."""

from __future__ import annotations

import functools
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass
from importlib import resources
from typing import Any

from layers.errors import CatalogueError


@dataclass(frozen=True)
class LandUse:
    """One code of the classification, e.g. ``0701`` 城镇住宅用地."""

    code: str
    name_zh: str
    name_en: str

    def as_dict(self) -> dict[str, str]:
        return {"code": self.code, "name_zh": self.name_zh, "name_en": self.name_en}


@dataclass(frozen=True)
class LandUseCodes:
    """The code list and its groups (``construction``, ``urban_construction``, ``outside_urban_allowed``)."""

    codes: Mapping[str, LandUse]
    groups: Mapping[str, tuple[str, ...]]
    source_zh: str = ""

    def get(self, code: str) -> LandUse | None:
        return self.codes.get(code)

    def in_group(self, code: str, group: str) -> bool:
        """Whether ``code`` belongs to ``group``: one of its prefixes is listed, and for
        ``urban_construction`` no prefix is listed under ``outside_urban_allowed``."""
        if group not in self.groups:
            raise CatalogueError(f"unknown land-use group {group!r}; groups: {', '.join(self.groups)}")
        listed = any(code.startswith(p) for p in self.groups[group])
        if group == "urban_construction":
            listed = listed and not any(
                code.startswith(p) for p in self.groups.get("outside_urban_allowed", ())
            )
        return listed

    @staticmethod
    def normalise(value: Any) -> str | None:
        """A code as text: ``"0701"``; a number read from a numeric field (701) gets its leading zero back."""
        if value is None or (isinstance(value, float) and value != value):
            return None
        if isinstance(value, float) and value.is_integer():
            value = int(value)
        text = str(value).strip()
        if not text:
            return None
        if isinstance(value, int) and len(text) % 2 == 1:
            text = "0" + text
        return text


@functools.cache
def load_land_use_codes() -> LandUseCodes:
    """The built-in code list ``layers/land_use_codes.toml`` (read once)."""
    text = resources.files("layers").joinpath("land_use_codes.toml").read_text(encoding="utf-8")
    table = tomllib.loads(text)
    codes = {str(k): LandUse(str(k), str(v["zh"]), str(v["en"])) for k, v in table["codes"].items()}
    groups = {str(k): tuple(str(c) for c in v) for k, v in table.get("groups", {}).items()}
    return LandUseCodes(codes, groups, str(table.get("meta", {}).get("source_zh", "")))
