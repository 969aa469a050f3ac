"""checks.rules: screening rules (control kind × project type → forbidden/conditional/allowed) from TOML."""

from __future__ import annotations

import tomllib
from collections.abc import Mapping
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any, Literal

from checks.errors import RulesError, UnknownProjectTypeError
from layers.catalogue import Catalogue

Outcome = Literal["forbidden", "conditional", "allowed"]
OUTCOMES: tuple[Outcome, ...] = ("forbidden", "conditional", "allowed")  # most severe first
OUTSIDE_URBAN = "outside_urban_boundary"  # 城镇开发边界外: the pseudo-kind the engine derives
URBAN_BOUNDARY = "urban_boundary"


@dataclass(frozen=True)
class Regulation:
    """A regulation reference shown to the user, Chinese and English."""

    key: str
    zh: str
    en: str

    def as_dict(self) -> dict[str, str]:
        return {"key": self.key, "zh": self.zh, "en": self.en}


@dataclass(frozen=True)
class ProjectType:
    """A project type a submission may declare, e.g. ``industrial`` 工业项目."""

    key: str
    name_zh: str
    name_en: str
    urban_construction: bool = False


@dataclass(frozen=True)
class PseudoKind:
    """A derived area reported like a kind but not a layer, e.g. 城镇开发边界外."""

    key: str
    name_zh: str
    name_en: str


@dataclass(frozen=True)
class Rule:
    """What applies when a parcel of ``project_type`` overlaps ``kind``."""

    kind: str
    project_type: str
    outcome: Outcome
    regulation: Regulation


@dataclass(frozen=True)
class Rules:
    """The whole screening policy; look rules up with :meth:`rule`."""

    project_types: Mapping[str, ProjectType]
    pseudo_kinds: Mapping[str, PseudoKind]
    table: Mapping[tuple[str, str], Rule]  # (kind, project_type) → rule
    fallback: tuple[Outcome, Regulation]  # for catalogue kinds without a table
    source: str = "built-in rules"

    def require_project_type(self, project_type: str) -> ProjectType:
        """The project type, or :class:`UnknownProjectTypeError` listing the valid ones."""
        try:
            return self.project_types[project_type]
        except KeyError:
            valid = ", ".join(self.project_types)
            raise UnknownProjectTypeError(
                f"unknown project type '{project_type}'; valid project types: {valid}") from None

    def rule(self, kind: str, project_type: str) -> Rule:
        """The rule for ``kind`` and ``project_type`` (the fallback if the kind has no table)."""
        self.require_project_type(project_type)
        found = self.table.get((kind, project_type))
        if found is not None:
            return found
        outcome, regulation = self.fallback
        return Rule(kind, project_type, outcome, regulation)


def _table(value: object, where: str) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise RulesError(f"{where} must be a table")
    return value


def _text(spec: Mapping[str, Any], field: str, where: str) -> str:
    value = spec.get(field)
    if not isinstance(value, str) or not value.strip():
        raise RulesError(f"{where}.{field} must be a non-empty string")
    return value


def _parse_project_types(doc: Mapping[str, Any], origin: str) -> dict[str, ProjectType]:
    types = _table(doc.get("project_types"), f"{origin}: [project_types]")
    if not types:
        raise RulesError(f"{origin}: [project_types] is empty")
    parsed: dict[str, ProjectType] = {}
    for key, raw in types.items():
        where = f"{origin}: project_types.{key}"
        spec = _table(raw, where)
        urban = spec.get("urban_construction", False)
        if not isinstance(urban, bool):
            raise RulesError(f"{where}.urban_construction must be true or false")
        parsed[key] = ProjectType(key, _text(spec, "name_zh", where), _text(spec, "name_en", where), urban)
    return parsed


def _parse_pseudo_kinds(doc: Mapping[str, Any], origin: str) -> dict[str, PseudoKind]:
    kinds = _table(doc.get("pseudo_kinds", {}), f"{origin}: [pseudo_kinds]")
    parsed: dict[str, PseudoKind] = {}
    for key, raw in kinds.items():
        where = f"{origin}: pseudo_kinds.{key}"
        spec = _table(raw, where)
        parsed[key] = PseudoKind(key, _text(spec, "name_zh", where), _text(spec, "name_en", where))
    return parsed


def _parse_regulations(doc: Mapping[str, Any], origin: str) -> dict[str, Regulation]:
    parsed: dict[str, Regulation] = {}
    for key, raw in _table(doc.get("regulations"), f"{origin}: [regulations]").items():
        where = f"{origin}: regulations.{key}"
        spec = _table(raw, where)
        parsed[key] = Regulation(key, _text(spec, "zh", where), _text(spec, "en", where))
    return parsed


def _parse_outcome(spec: Mapping[str, Any], regulations: Mapping[str, Regulation],
                   where: str) -> tuple[Outcome, Regulation]:
    outcome = spec.get("outcome")
    if outcome not in OUTCOMES:
        raise RulesError(f"{where}.outcome must be one of {', '.join(OUTCOMES)}, got {outcome!r}")
    reg_key = spec.get("regulation")
    if not isinstance(reg_key, str) or reg_key not in regulations:
        raise RulesError(f"{where}.regulation '{reg_key}' is not a [regulations.*] key")
    unknown = set(spec) - {"outcome", "regulation"}
    if unknown:
        raise RulesError(f"{where} has unknown fields {', '.join(sorted(unknown))}")
    return outcome, regulations[reg_key]


def _check_kind_key(kind: str, catalogue: Catalogue, pseudo: Mapping[str, PseudoKind], origin: str) -> None:
    if kind in pseudo:
        return
    if kind not in catalogue:
        known = ", ".join([*catalogue, *pseudo])
        raise RulesError(f"{origin}: kinds.{kind} is neither a catalogue kind nor a pseudo-kind ({known})")
    if catalogue[kind].group == "boundary":
        raise RulesError(f"{origin}: kinds.{kind} is an administrative boundary, not a control")


def _parse_kind_rules(doc: Mapping[str, Any], origin: str, catalogue: Catalogue,
                      types: Mapping[str, ProjectType], pseudo: Mapping[str, PseudoKind],
                      regulations: Mapping[str, Regulation]) -> dict[tuple[str, str], Rule]:
    table: dict[tuple[str, str], Rule] = {}
    for kind, raw in _table(doc.get("kinds"), f"{origin}: [kinds]").items():
        _check_kind_key(kind, catalogue, pseudo, origin)
        spec = _table(raw, f"{origin}: kinds.{kind}")
        unknown = set(spec) - {"default", *types}
        if unknown:
            raise RulesError(f"{origin}: kinds.{kind} names unknown project types "
                             f"{', '.join(sorted(unknown))}; valid: {', '.join(types)}")
        for ptype in types:
            entry = spec.get(ptype, spec.get("default"))
            if entry is None:
                raise RulesError(f"{origin}: kinds.{kind} has no rule for '{ptype}' and no default")
            where = f"{origin}: kinds.{kind}.{ptype if ptype in spec else 'default'}"
            outcome, regulation = _parse_outcome(_table(entry, where), regulations, where)
            table[(kind, ptype)] = Rule(kind, ptype, outcome, regulation)
    return table


def parse_rules(doc: Mapping[str, Any], catalogue: Catalogue, origin: str) -> Rules:
    """Validate a parsed rules document against ``catalogue``; :class:`RulesError` names the bad key."""
    types = _parse_project_types(doc, origin)
    pseudo = _parse_pseudo_kinds(doc, origin)
    clash = set(pseudo) & set(catalogue)
    if clash:
        raise RulesError(f"{origin}: pseudo-kinds {', '.join(sorted(clash))} clash with catalogue kinds")
    regulations = _parse_regulations(doc, origin)
    table = _parse_kind_rules(doc, origin, catalogue, types, pseudo, regulations)
    fallback = _parse_outcome(_table(doc.get("defaults"), f"{origin}: [defaults]"), regulations,
                              f"{origin}: defaults")
    return Rules(types, pseudo, table, fallback, origin)


def load_rules(path: Path | None, catalogue: Catalogue) -> Rules:
    """The rules in ``path`` (replacing the built-in policy), or the built-in ``checks/rules.toml``."""
    try:
        if path is None:
            text = resources.files("checks").joinpath("rules.toml").read_text(encoding="utf-8")
            origin = "built-in rules"
        else:
            text = Path(path).read_text(encoding="utf-8")
            origin = str(path)
        doc = tomllib.loads(text)
    except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError) as exc:
        raise RulesError(f"rules file {path}: {exc}") from exc
    return parse_rules(doc, catalogue, origin)
