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
    # canonical attribute → default source field name, e.g. (("land_use", "YDDM"), ("far_max", "RJL"));
    # a kind with fields is carried feature by feature with its attributes (see layers.attributes)
    fields: tuple[tuple[str, str], ...] = ()

    @property
    def field_map(self) -> dict[str, str]:
        """Canonical attribute → default source field name (empty for plain control layers)."""
        return dict(self.fields)

    @property
    def label(self) -> str:
        """Chinese first, English beside: ``生态保护红线 Ecological protection red line``."""
        return f"{self.name_zh} {self.name_en}"


@dataclass(frozen=True)
class AssessmentType:
    """One type of regional assessment (区域评估), e.g. ``geohazard`` 地质灾害危险性评估."""

    key: str
    name_zh: str
    name_en: str


class Catalogue(Mapping[str, LayerKind]):
    """An ordered, read-only mapping of kind key to :class:`LayerKind`, with the assessment types."""

    def __init__(self, kinds: Mapping[str, LayerKind],
                 assessment_types: Mapping[str, AssessmentType] | None = None) -> None:
        self._kinds = dict(kinds)
        self.assessment_types: dict[str, AssessmentType] = dict(assessment_types or {})

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
        unknown = set(spec) - {"name_zh", "name_en", "group", "layer_code", "colour", "geometry", "fields"}
        if unknown:
            raise CatalogueError(f"{origin}: kinds.{key} has unknown fields {', '.join(sorted(unknown))}")
        fields = _parse_fields(spec.pop("fields", {}), f"{origin}: kinds.{key}.fields")
        parsed[key] = LayerKind(key=key, fields=fields, **spec)
    return parsed


def _parse_fields(spec: object, where: str) -> tuple[tuple[str, str], ...]:
    from layers.attributes import FIELD_SPECS  # the canonical attributes and what they mean

    if not isinstance(spec, dict):
        raise CatalogueError(f"{where} must be a table of canonical attribute = source field name")
    for canonical, source in spec.items():
        if canonical not in FIELD_SPECS:
            raise CatalogueError(f"{where}: unknown attribute {canonical!r}; known: {', '.join(FIELD_SPECS)}")
        if not isinstance(source, str) or not source:
            raise CatalogueError(f"{where}.{canonical} must name a source field")
    return tuple((str(k), str(v)) for k, v in spec.items())


def _parse_assessment_types(table: Mapping[str, object], origin: str) -> dict[str, AssessmentType]:
    types = table.get("assessment_types", {})
    if not isinstance(types, dict):
        raise CatalogueError(f"{origin}: [assessment_types.*] must be tables")
    out: dict[str, AssessmentType] = {}
    for key, spec in types.items():
        if not isinstance(spec, dict) or set(spec) != {"name_zh", "name_en"}:
            raise CatalogueError(f"{origin}: assessment_types.{key} needs exactly name_zh and name_en")
        out[key] = AssessmentType(key, str(spec["name_zh"]), str(spec["name_en"]))
    return out


def load_catalogue(extra: Path | None = None) -> Catalogue:
    """The built-in catalogue, extended (or overridden per key) by the TOML file ``extra``."""
    text = resources.files("layers").joinpath("catalogue.toml").read_text(encoding="utf-8")
    builtin = tomllib.loads(text)
    kinds = _parse_kinds(builtin, "built-in catalogue")
    assessments = _parse_assessment_types(builtin, "built-in catalogue")
    if extra is not None:
        try:
            table = tomllib.loads(Path(extra).read_text(encoding="utf-8"))
        except (OSError, tomllib.TOMLDecodeError) as exc:
            raise CatalogueError(f"catalogue file {extra}: {exc}") from exc
        if "kinds" in table or "assessment_types" not in table:  # a file of neither is an error
            kinds.update(_parse_kinds(table, str(extra)))
        assessments.update(_parse_assessment_types(table, str(extra)))
    return Catalogue(kinds, assessments)
