"""layers.catalogue: the known plan-layer kinds, loaded from TOML and extensible by configuration."""

from __future__ import annotations

import tomllib
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Literal

from layers.errors import CatalogueError, UnknownKindError

Group = Literal["line", "zone", "overlay", "boundary"]
GROUPS: tuple[Group, ...] = ("line", "zone", "overlay", "boundary")
GEOMETRIES = ("polygon", "line", "point", "any")


@dataclass(frozen=True)
class LayerKind:
    """One kind of plan layer, e.g. ``ecological_redline`` 生态保护红线."""

    key: str
    name_zh: str
    name_en: str
    group: Group
    layer_code: str = ""
    colour: str = "#888888"
    geometry: str = "polygon"

    @property
    def label(self) -> str:
        """Chinese first, English beside: ``生态保护红线 Ecological protection red line``."""
        return f"{self.name_zh} {self.name_en}"


class Catalogue(Mapping[str, LayerKind]):
    """An ordered, read-only mapping of kind key to :class:`LayerKind`."""

    def __init__(self, kinds: Mapping[str, LayerKind]) -> None:
        self._kinds = dict(kinds)

    def __getitem__(self, key: str) -> LayerKind:
        try:
            return self._kinds[key]
        except KeyError:
            known = ", ".join(self._kinds)
            raise UnknownKindError(f"unknown layer kind '{key}'; known kinds: {known}") from None

    def __iter__(self) -> Iterator[str]:
        return iter(self._kinds)

    def __len__(self) -> int:
        return len(self._kinds)

    def in_group(self, group: Group) -> list[LayerKind]:
        """Kinds of one group, in catalogue order."""
        return [k for k in self._kinds.values() if k.group == group]


def _parse_kinds(table: Mapping[str, object], origin: str) -> dict[str, LayerKind]:
    kinds = table.get("kinds")
    if not isinstance(kinds, dict):
        raise CatalogueError(f"{origin}: no [kinds.*] tables")
    parsed: dict[str, LayerKind] = {}
    for key, spec in kinds.items():
        if not isinstance(spec, dict):
            raise CatalogueError(f"{origin}: kinds.{key} must be a table")
        missing = {"name_zh", "name_en", "group"} - set(spec)
        if missing:
            raise CatalogueError(f"{origin}: kinds.{key} lacks {', '.join(sorted(missing))}")
        if spec["group"] not in GROUPS:
            raise CatalogueError(f"{origin}: kinds.{key}.group must be one of {', '.join(GROUPS)}")
        if spec.get("geometry", "polygon") not in GEOMETRIES:
            raise CatalogueError(f"{origin}: kinds.{key}.geometry must be one of {', '.join(GEOMETRIES)}")
        unknown = set(spec) - {"name_zh", "name_en", "group", "layer_code", "colour", "geometry"}
        if unknown:
            raise CatalogueError(f"{origin}: kinds.{key} has unknown fields {', '.join(sorted(unknown))}")
        parsed[key] = LayerKind(key=key, **spec)
    return parsed


def load_catalogue(extra: Path | None = None) -> Catalogue:
    """The built-in catalogue, extended (or overridden per key) by the TOML file ``extra``."""
    text = resources.files("layers").joinpath("catalogue.toml").read_text(encoding="utf-8")
    kinds = _parse_kinds(tomllib.loads(text), "built-in catalogue")
    if extra is not None:
        try:
            table = tomllib.loads(Path(extra).read_text(encoding="utf-8"))
        except (OSError, tomllib.TOMLDecodeError) as exc:
            raise CatalogueError(f"catalogue file {extra}: {exc}") from exc
        kinds.update(_parse_kinds(table, str(extra)))
    return Catalogue(kinds)
