"""blueprint.precedence: which plan kind prevails where exclusive plans overlap, loaded from TOML."""

from __future__ import annotations

import tomllib
from collections.abc import Mapping
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any

from blueprint.errors import PrecedenceError
from layers.catalogue import Catalogue

RULE_LINES = "three_lines_exclusive"
RULE_ZONES = "zones_exclusive"
RULE_LINE_ZONE = "line_contradicts_zone"
RULE_PLAN_ON_LINE = "plan_use_on_line"  # a detailed-plan construction parcel on a protected line
RULE_PLAN_OUTSIDE_LINE = "plan_use_outside_line"  # … outside the line it must keep within


@dataclass(frozen=True)
class Contradiction:
    """A control line lying in a zone that denies it, and which of the two prevails."""

    line: str
    zone: str
    winner: str


@dataclass(frozen=True)
class PlanContradiction:
    """Features of an attributed kind (控规地块) whose land use is in ``land_use`` (a group of
    layers/land_use_codes.toml) must not lie ``on`` the line (red line, farmland) or ``outside`` it
    (urban development boundary); where they do, the line prevails and the area is a 差异图斑."""

    kind: str
    land_use: str
    line: str
    where: str  # "on" | "outside"

    @property
    def rule(self) -> str:
        return RULE_PLAN_ON_LINE if self.where == "on" else RULE_PLAN_OUTSIDE_LINE


@dataclass(frozen=True)
class Precedence:
    """Exclusive kinds, highest first: the lines, then the zones; plus the line/zone contradictions."""

    order: tuple[str, ...]
    lines: tuple[str, ...] = ()
    zones: tuple[str, ...] = ()
    contradictions: tuple[Contradiction, ...] = ()
    plan_contradictions: tuple[PlanContradiction, ...] = ()

    def rank(self, kind: str) -> int:
        """Position in ``order`` (0 = highest); unranked kinds are an error."""
        try:
            return self.order.index(kind)
        except ValueError:
            raise PrecedenceError(
                f"precedence does not rank kind '{kind}'; ranked kinds: {', '.join(self.order)}") from None

    def conflict(self, a: str, b: str) -> tuple[str, str, str] | None:
        """``(winner, loser, rule)`` when kinds ``a`` and ``b`` may not share ground, else None."""
        if a == b:
            return None
        for group, rule in ((self.lines, RULE_LINES), (self.zones, RULE_ZONES)):
            if a in group and b in group:
                return (a, b, rule) if group.index(a) < group.index(b) else (b, a, rule)
        for c in self.contradictions:
            if {a, b} == {c.line, c.zone}:
                loser = c.zone if c.winner == c.line else c.line
                return c.winner, loser, RULE_LINE_ZONE
        return None


def _kind_list(table: Mapping[str, Any], section: str, group: str, catalogue: Catalogue,
               origin: str) -> tuple[str, ...]:
    spec = table.get(section)
    if not isinstance(spec, dict) or not isinstance(spec.get("order"), list):
        raise PrecedenceError(f"{origin}: [{section}] needs an 'order' list of {group} kinds")
    order = spec["order"]
    for key in order:
        if not isinstance(key, str) or key not in catalogue:
            raise PrecedenceError(f"{origin}: [{section}] names unknown kind {key!r}; "
                                  f"known kinds: {', '.join(catalogue)}")
        if catalogue[key].group != group:
            raise PrecedenceError(f"{origin}: [{section}] lists '{key}', which is a "
                                  f"{catalogue[key].group} kind, not a {group} kind")
    if len(set(order)) != len(order):
        raise PrecedenceError(f"{origin}: [{section}] lists a kind twice: {order}")
    return tuple(order)


def _contradictions(table: Mapping[str, Any], lines: tuple[str, ...], zones: tuple[str, ...],
                    origin: str) -> tuple[Contradiction, ...]:
    raw = table.get("contradictions", [])
    if not isinstance(raw, list):
        raise PrecedenceError(f"{origin}: 'contradictions' must be an array of tables [[contradictions]]")
    out: list[Contradiction] = []
    for i, spec in enumerate(raw, start=1):
        where = f"{origin}: contradiction #{i}"
        if not isinstance(spec, dict) or set(spec) != {"line", "zone", "winner"}:
            raise PrecedenceError(f"{where} needs exactly the keys line, zone, winner")
        if spec["line"] not in lines:
            raise PrecedenceError(f"{where}: line {spec['line']!r} is not a ranked line kind")
        if spec["zone"] not in zones:
            raise PrecedenceError(f"{where}: zone {spec['zone']!r} is not a ranked zone kind")
        if spec["winner"] not in (spec["line"], spec["zone"]):
            raise PrecedenceError(f"{where}: winner {spec['winner']!r} must be its line or its zone")
        out.append(Contradiction(spec["line"], spec["zone"], spec["winner"]))
    return tuple(out)


def _plan_contradictions(table: Mapping[str, Any], lines: tuple[str, ...], catalogue: Catalogue,
                         origin: str) -> tuple[PlanContradiction, ...]:
    from layers.land_use import load_land_use_codes

    raw = table.get("plan_contradictions", [])
    if not isinstance(raw, list):
        raise PrecedenceError(f"{origin}: 'plan_contradictions' must be an array of tables "
                              "[[plan_contradictions]]")
    groups = load_land_use_codes().groups
    out: list[PlanContradiction] = []
    for i, spec in enumerate(raw, start=1):
        where = f"{origin}: plan contradiction #{i}"
        if not isinstance(spec, dict) or set(spec) != {"kind", "land_use", "line", "where"}:
            raise PrecedenceError(f"{where} needs exactly the keys kind, land_use, line, where")
        if spec["kind"] not in catalogue or "land_use" not in catalogue[spec["kind"]].field_map:
            raise PrecedenceError(f"{where}: kind {spec['kind']!r} is not a catalogue kind with a "
                                  "land_use field")
        if spec["land_use"] not in groups:
            raise PrecedenceError(f"{where}: land_use {spec['land_use']!r} is not a group of the land-use "
                                  f"codes ({', '.join(groups)})")
        if spec["line"] not in lines:
            raise PrecedenceError(f"{where}: line {spec['line']!r} is not a ranked line kind")
        if spec["where"] not in ("on", "outside"):
            raise PrecedenceError(f"{where}: where must be \"on\" or \"outside\"")
        out.append(PlanContradiction(spec["kind"], spec["land_use"], spec["line"], spec["where"]))
    return tuple(out)


def load_precedence(path: Path | None, catalogue: Catalogue) -> Precedence:
    """The precedence in ``path`` (default: the built-in ``blueprint/precedence.toml``), checked."""
    if path is None:
        origin = "built-in precedence"
        text = resources.files("blueprint").joinpath("precedence.toml").read_text(encoding="utf-8")
    else:
        origin = f"precedence file {path}"
        try:
            text = Path(path).read_text(encoding="utf-8")
        except OSError as exc:
            raise PrecedenceError(f"{origin}: cannot read ({exc.strerror})") from exc
    try:
        table = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise PrecedenceError(f"{origin}: not valid TOML ({exc})") from exc
    unknown = set(table) - {"lines", "zones", "contradictions", "plan_contradictions"}
    if unknown:
        raise PrecedenceError(f"{origin}: unknown sections {', '.join(sorted(unknown))}")
    lines = _kind_list(table, "lines", "line", catalogue, origin)
    zones = _kind_list(table, "zones", "zone", catalogue, origin)
    return Precedence(order=lines + zones, lines=lines, zones=zones,
                      contradictions=_contradictions(table, lines, zones, origin),
                      plan_contradictions=_plan_contradictions(table, lines, catalogue, origin))
