"""checks.rules: screening rules (control kind × project type → forbidden/conditional/allowed) from TOML.

Project types form two levels: the groups (today's six coarse types: 工业项目, 线性基础设施项目 …) and the
finer types beneath them (旅游设施, 军事设施 …, each naming its ``group``). A rule is looked up for the
type itself, then for its group, then the kind's ``default``; so a finer type differs from its group
only where a regulation says so, and either level may be declared by a submission.
"""

from __future__ import annotations

import datetime as dt
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field
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
    """A regulation reference shown to the user, Chinese and English, with its citation.

    ``document`` is the title (《…》), ``number`` the document number (文号, or the law's revision),
    ``article`` the article or item (第三十五条, 一（一）6); ``verified`` is false where the rules file
    could not check the wording or numbering against the published text (it says so in a comment).
    """

    key: str
    zh: str
    en: str
    document: str = ""
    number: str = ""
    article: str = ""
    verified: bool = True

    @property
    def citation_zh(self) -> str:
        """《文件》（文号）条款, e.g. 《中华人民共和国土地管理法》（2019年修正）第三十五条."""
        if not self.document:
            return ""
        number = f"（{self.number}）" if self.number else ""
        unverified = "（条款待核）" if not self.verified else ""
        return f"{self.document}{number}{self.article}{unverified}"

    @property
    def reference_zh(self) -> str:
        """文号 and 条款 only, beside a text that names the document: 国务院令第394号 第二十一条."""
        unverified = "（条款待核）" if not self.verified else ""
        return " ".join(part for part in (self.number, self.article) if part) + unverified

    def as_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"key": self.key, "zh": self.zh, "en": self.en}
        if self.document:
            out.update(document=self.document, number=self.number, article=self.article,
                       citation_zh=self.citation_zh, reference_zh=self.reference_zh, verified=self.verified)
        return out


@dataclass(frozen=True)
class Requirement:
    """What the applicant must provide or obtain for a conditional outcome, e.g. 不可避让论证报告."""

    key: str
    zh: str
    en: str
    basis: str = ""  # the document and item that asks for it, where it is not the rule's own regulation

    def as_dict(self) -> dict[str, str]:
        out = {"key": self.key, "zh": self.zh, "en": self.en}
        if self.basis:
            out["basis"] = self.basis
        return out


@dataclass(frozen=True)
class ProjectType:
    """A project type a submission may declare: a group (``industrial`` 工业项目) or a finer type
    beneath one (``tourism_facility`` 旅游设施, group ``public_facility``)."""

    key: str
    name_zh: str
    name_en: str
    urban_construction: bool = False
    group: str | None = None  # None: this type is a group

    @property
    def is_group(self) -> bool:
        return self.group is None

    @property
    def group_key(self) -> str:
        """The group this type belongs to (a group is its own)."""
        return self.group or self.key


@dataclass(frozen=True)
class RulesMeta:
    """Which policy a result applied: the rules file's own version and the date it takes effect."""

    version: str = "unversioned"
    effective_date: str = ""
    title_zh: str = ""
    title_en: str = ""

    def as_dict(self) -> dict[str, str]:
        return {"version": self.version, "effective_date": self.effective_date,
                "title_zh": self.title_zh, "title_en": self.title_en}


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
    requirements: tuple[Requirement, ...] = ()


@dataclass(frozen=True)
class Rules:
    """The whole screening policy; look rules up with :meth:`rule`."""

    project_types: Mapping[str, ProjectType]  # groups and finer types, in the file's order
    pseudo_kinds: Mapping[str, PseudoKind]
    table: Mapping[tuple[str, str], Rule]  # (kind, project_type) → rule, for every type of both levels
    fallback: tuple[Outcome, Regulation]  # for catalogue kinds without a table
    source: str = "built-in rules"
    meta: RulesMeta = RulesMeta()
    requirements: Mapping[str, Requirement] = field(default_factory=dict)

    @property
    def groups(self) -> list[ProjectType]:
        """The group-level types, in the file's order."""
        return [t for t in self.project_types.values() if t.is_group]

    def members(self, group: str) -> list[ProjectType]:
        """The finer types beneath ``group``, in the file's order."""
        return [t for t in self.project_types.values() if t.group == group]

    def require_project_type(self, project_type: str) -> ProjectType:
        """The project type (either level), or :class:`UnknownProjectTypeError` listing the valid ones."""
        try:
            return self.project_types[project_type]
        except KeyError:
            groups = ", ".join(g.key for g in self.groups)
            finer = "; ".join(f"{g.key}: " + ", ".join(m.key for m in self.members(g.key))
                              for g in self.groups if self.members(g.key))
            more = f"; finer types beneath them — {finer}" if finer else ""
            raise UnknownProjectTypeError(
                f"unknown project type '{project_type}'; valid project types: {groups}{more}") from None

    def rule(self, kind: str, project_type: str) -> Rule:
        """The rule for ``kind`` and ``project_type`` (the fallback if the kind has no table)."""
        self.require_project_type(project_type)
        found = self.table.get((kind, project_type))
        if found is not None:
            return found
        outcome, regulation = self.fallback
        return Rule(kind, project_type, outcome, regulation)

    def policy(self, kinds: list[str]) -> list[dict[str, Any]]:
        """Every (kind, project type) rule for ``kinds`` as plain rows (what ``blueprint rules`` prints)."""
        rows = []
        for kind in kinds:
            for ptype in self.project_types.values():
                rule = self.rule(kind, ptype.key)
                rows.append({"kind": kind, "project_type": ptype.key, "group": ptype.group_key,
                             "outcome": rule.outcome, "regulation": rule.regulation.as_dict(),
                             "requirements": [r.as_dict() for r in rule.requirements]})
        return rows


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
    specs = {key: _table(raw, f"{origin}: project_types.{key}") for key, raw in types.items()}
    parsed: dict[str, ProjectType] = {}
    for key, spec in specs.items():  # groups first, so a finer type can inherit from its group
        where = f"{origin}: project_types.{key}"
        group = spec.get("group")
        if group is None:
            continue
        if not isinstance(group, str) or group not in specs:
            raise RulesError(f"{where}.group '{group}' is not a project type")
        if specs[group].get("group") is not None:
            raise RulesError(f"{where}.group '{group}' is itself a finer type; groups are one level deep")
    for key, spec in specs.items():
        where = f"{origin}: project_types.{key}"
        unknown = set(spec) - {"name_zh", "name_en", "urban_construction", "group"}
        if unknown:
            raise RulesError(f"{where} has unknown fields {', '.join(sorted(unknown))}")
        group = spec.get("group")
        inherited = specs[group].get("urban_construction", False) if group else False
        urban = spec.get("urban_construction", inherited)
        if not isinstance(urban, bool):
            raise RulesError(f"{where}.urban_construction must be true or false")
        parsed[key] = ProjectType(key, _text(spec, "name_zh", where), _text(spec, "name_en", where), urban,
                                  group)
    return parsed


def _parse_pseudo_kinds(doc: Mapping[str, Any], origin: str) -> dict[str, PseudoKind]:
    kinds = _table(doc.get("pseudo_kinds", {}), f"{origin}: [pseudo_kinds]")
    parsed: dict[str, PseudoKind] = {}
    for key, raw in kinds.items():
        where = f"{origin}: pseudo_kinds.{key}"
        spec = _table(raw, where)
        parsed[key] = PseudoKind(key, _text(spec, "name_zh", where), _text(spec, "name_en", where))
    return parsed


def _optional_text(spec: Mapping[str, Any], field_name: str, where: str) -> str:
    value = spec.get(field_name, "")
    if not isinstance(value, str):
        raise RulesError(f"{where}.{field_name} must be a string")
    return value


def _parse_regulations(doc: Mapping[str, Any], origin: str) -> dict[str, Regulation]:
    parsed: dict[str, Regulation] = {}
    for key, raw in _table(doc.get("regulations"), f"{origin}: [regulations]").items():
        where = f"{origin}: regulations.{key}"
        spec = _table(raw, where)
        unknown = set(spec) - {"zh", "en", "document", "number", "article", "verified"}
        if unknown:
            raise RulesError(f"{where} has unknown fields {', '.join(sorted(unknown))}")
        verified = spec.get("verified", True)
        if not isinstance(verified, bool):
            raise RulesError(f"{where}.verified must be true or false")
        document, number, article = (_optional_text(spec, name, where) for name in ("document", "number",
                                                                                    "article"))
        parsed[key] = Regulation(key, _text(spec, "zh", where), _text(spec, "en", where), document, number,
                                 article, verified)
    return parsed


def _parse_requirements(doc: Mapping[str, Any], origin: str) -> dict[str, Requirement]:
    parsed: dict[str, Requirement] = {}
    for key, raw in _table(doc.get("requirements", {}), f"{origin}: [requirements]").items():
        where = f"{origin}: requirements.{key}"
        spec = _table(raw, where)
        unknown = set(spec) - {"zh", "en", "basis"}
        if unknown:
            raise RulesError(f"{where} has unknown fields {', '.join(sorted(unknown))}")
        parsed[key] = Requirement(key, _text(spec, "zh", where), _text(spec, "en", where),
                                  _optional_text(spec, "basis", where))
    return parsed


def _parse_meta(doc: Mapping[str, Any], origin: str) -> RulesMeta:
    spec = _table(doc.get("rules", {}), f"{origin}: [rules]")
    if not spec:
        return RulesMeta()
    where = f"{origin}: rules"
    unknown = set(spec) - {"version", "effective_date", "title_zh", "title_en"}
    if unknown:
        raise RulesError(f"{where} has unknown fields {', '.join(sorted(unknown))}")
    effective = spec.get("effective_date", "")
    if isinstance(effective, dt.date) and not isinstance(effective, dt.datetime):
        effective = effective.isoformat()
    elif not isinstance(effective, str):
        raise RulesError(f"{where}.effective_date must be a date (YYYY-MM-DD)")
    elif effective:
        try:
            effective = dt.date.fromisoformat(effective).isoformat()
        except ValueError:
            raise RulesError(f"{where}.effective_date must be a date (YYYY-MM-DD), "
                             f"got {effective!r}") from None
    return RulesMeta(_text(spec, "version", where), effective, _optional_text(spec, "title_zh", where),
                     _optional_text(spec, "title_en", where))


def _parse_outcome(spec: Mapping[str, Any], regulations: Mapping[str, Regulation],
                   where: str, requirements: Mapping[str, Requirement] | None = None
                   ) -> tuple[Outcome, Regulation, tuple[Requirement, ...]]:
    outcome = spec.get("outcome")
    if outcome not in OUTCOMES:
        raise RulesError(f"{where}.outcome must be one of {', '.join(OUTCOMES)}, got {outcome!r}")
    reg_key = spec.get("regulation")
    if not isinstance(reg_key, str) or reg_key not in regulations:
        raise RulesError(f"{where}.regulation '{reg_key}' is not a [regulations.*] key")
    unknown = set(spec) - {"outcome", "regulation", "requirements"}
    if unknown:
        raise RulesError(f"{where} has unknown fields {', '.join(sorted(unknown))}")
    keys = spec.get("requirements", [])
    if not isinstance(keys, list) or not all(isinstance(k, str) for k in keys):
        raise RulesError(f"{where}.requirements must be a list of [requirements.*] keys")
    known = requirements or {}
    missing = [k for k in keys if k not in known]
    if missing:
        raise RulesError(f"{where}.requirements '{missing[0]}' is not a [requirements.*] key")
    if keys and outcome != "conditional":
        raise RulesError(f"{where}: requirements belong to conditional outcomes only, not {outcome}")
    return outcome, regulations[reg_key], tuple(known[k] for k in keys)


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
                      regulations: Mapping[str, Regulation],
                      requirements: Mapping[str, Requirement]) -> dict[tuple[str, str], Rule]:
    table: dict[tuple[str, str], Rule] = {}
    for kind, raw in _table(doc.get("kinds"), f"{origin}: [kinds]").items():
        _check_kind_key(kind, catalogue, pseudo, origin)
        spec = _table(raw, f"{origin}: kinds.{kind}")
        unknown = set(spec) - {"default", *types}
        if unknown:
            raise RulesError(f"{origin}: kinds.{kind} names unknown project types "
                             f"{', '.join(sorted(unknown))}; valid: {', '.join(types)}")
        for ptype in types.values():
            # the type's own rule, else its group's, else the kind's default
            source = next((k for k in (ptype.key, ptype.group, "default") if k and k in spec), None)
            if source is None:
                raise RulesError(f"{origin}: kinds.{kind} has no rule for '{ptype.key}' and no default")
            where = f"{origin}: kinds.{kind}.{source}"
            outcome, regulation, needs = _parse_outcome(_table(spec[source], where), regulations, where,
                                                        requirements)
            table[(kind, ptype.key)] = Rule(kind, ptype.key, outcome, regulation, needs)
    return table


def parse_rules(doc: Mapping[str, Any], catalogue: Catalogue, origin: str) -> Rules:
    """Validate a parsed rules document against ``catalogue``; :class:`RulesError` names the bad key."""
    meta = _parse_meta(doc, origin)
    types = _parse_project_types(doc, origin)
    pseudo = _parse_pseudo_kinds(doc, origin)
    clash = set(pseudo) & set(catalogue)
    if clash:
        raise RulesError(f"{origin}: pseudo-kinds {', '.join(sorted(clash))} clash with catalogue kinds")
    regulations = _parse_regulations(doc, origin)
    requirements = _parse_requirements(doc, origin)
    table = _parse_kind_rules(doc, origin, catalogue, types, pseudo, regulations, requirements)
    outcome, regulation, _ = _parse_outcome(_table(doc.get("defaults"), f"{origin}: [defaults]"), regulations,
                                            f"{origin}: defaults")
    return Rules(types, pseudo, table, (outcome, regulation), origin, meta, requirements)


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
