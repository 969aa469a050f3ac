"""api.ogc.sql_filter: CQL2 text filters translated to a SQL condition on a collection's table.

Our own translation of the subset api.ogc.filter evaluates on frames, not pygeofilter's SQLAlchemy backend:
that backend calls geoalchemy2 comparators and ST_GeomFromEWKT (not how SpatiaLite spells it), never asks
SpatiaLite's R*Tree, leaves a missing value to SQL's three-valued logic (the frame path takes it as false,
so ``NOT`` and ``<>`` would answer otherwise), compares text in the database's collation and, on SQLite,
LIKE without case. Here every node gives the frame path's answer as a condition that is never NULL:
comparisons in code-point order (``COLLATE "C"`` on PostgreSQL), LIKE as GLOB on SQLite, spatial
predicates behind the spatial index, literals in the working CRS as before.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import shapely
import sqlalchemy as sa
from pygeofilter import ast
from pyproj import CRS
from shapely.geometry.base import BaseGeometry

from api.errors import InvalidParameterError
from api.ogc.crs import OfferedCrs
from api.ogc.filter import COMPARE, GEOMETRY_NAMES, FrameEvaluator, evaluate, geometry_literal, on

Condition = sa.ColumnElement[Any]
Bbox = tuple[float, float, float, float]
DEFERRED = "deferred"  # a property kind SQL would compare otherwise than pandas (a layer's dates)


class Untranslatable(Exception):
    """The filter names a property of kind ``DEFERRED``: the caller evaluates it on the frame instead."""


@dataclass(frozen=True)
class Prop:
    """A queryable property: its SQL expression and whether it holds text, numbers or something else."""

    expr: sa.ColumnElement[Any]
    kind: str  # "text" | "number" | DEFERRED
    name: str


@dataclass(frozen=True)
class Source:
    """What a filter may name in one collection's query."""

    geom: sa.ColumnElement[Any]
    properties: Mapping[str, Prop]  # including "id"
    srid: int
    dialect: str  # "sqlite" | "postgresql"
    index: Callable[[Bbox], Condition] | None = None  # candidate rows through the spatial index


@dataclass(frozen=True)
class Cond:
    """A translated condition (never NULL), as opposed to a value."""

    expr: Condition


def to_sql(tree: ast.Node, source: Source, filter_crs: OfferedCrs, work_crs: CRS) -> Condition:
    """The WHERE condition selecting the rows for which the filter holds."""
    result = evaluate(SqlEvaluator(source, filter_crs, work_crs), tree)
    if isinstance(result, Cond | bool):
        return _cond(result)
    raise InvalidParameterError("filter is not a condition (it must be true or false for each feature)")


def _cond(value: Any) -> Condition:
    if isinstance(value, Cond):
        return value.expr
    if isinstance(value, bool):
        return sa.true() if value else sa.false()
    raise InvalidParameterError("filter: AND, OR and NOT combine conditions, not values")


def _never_null(expr: Condition) -> Condition:
    return sa.func.coalesce(expr, sa.false())


class Geom:
    """The collection's geometry column named in a filter."""

    def __init__(self, expr: sa.ColumnElement[Any]) -> None:
        self.expr = expr


class SqlEvaluator(FrameEvaluator):
    """The frame evaluator's literals, boxes and refusals; conditions as SQL instead of masks."""

    def __init__(self, source: Source, filter_crs: OfferedCrs, work_crs: CRS) -> None:
        super().__init__(None, filter_crs, work_crs)
        self.source = source

    @on(ast.Not)
    def not_(self, node: ast.Not, sub: Any) -> Any:
        return Cond(sa.not_(_cond(sub)))

    @on(ast.And, ast.Or)
    def combination(self, node: ast.Combination, lhs: Any, rhs: Any) -> Any:
        join = sa.and_ if node.op.value == "AND" else sa.or_
        return Cond(join(_cond(lhs), _cond(rhs)))

    @on(ast.Comparison, subclasses=True)
    def comparison(self, node: ast.Comparison, lhs: Any, rhs: Any) -> Any:
        _same_kind(lhs, rhs)
        if not isinstance(lhs, Prop) and not isinstance(rhs, Prop):
            return COMPARE[node.op.value](lhs, rhs)
        a, b = self._operand(lhs), self._operand(rhs)
        if node.op.value == "<>":  # a missing value differs from everything, as in pandas
            return Cond(sa.not_(_never_null(a == b)))
        return Cond(_never_null(COMPARE[node.op.value](a, b)))

    @on(ast.Between)
    def between(self, node: ast.Between, lhs: Any, low: Any, high: Any) -> Any:
        _same_kind(lhs, low)
        _same_kind(lhs, high)
        if not isinstance(lhs, Prop):
            inside = bool((lhs >= low) & (lhs <= high))
            return not inside if node.not_ else inside
        value = self._operand(lhs)
        hits = _never_null(sa.and_(value >= self._operand(low), value <= self._operand(high)))
        return Cond(sa.not_(hits) if node.not_ else hits)

    @on(ast.Like)
    def like(self, node: ast.Like, lhs: Any) -> Any:
        prop = _prop(lhs)
        if not isinstance(node.pattern, str):
            raise InvalidParameterError("filter: LIKE needs a text pattern")
        _value(node.pattern)
        text = prop.expr if prop.kind == "text" else sa.cast(prop.expr, sa.Text)
        parts = _like_parts(node.pattern, node.wildcard, node.singlechar, node.escapechar)
        if self.source.dialect == "postgresql":
            pattern = "".join(_pg_like(kind, char) for kind, char in parts)
            matched = text.ilike(pattern, escape="\\") if node.nocase else text.like(pattern, escape="\\")
        else:  # SQLite's LIKE ignores case; GLOB does not
            pattern = "".join(_glob(kind, char) for kind, char in parts)
            if node.nocase:
                text, pattern = sa.func.lower(text), pattern.lower()
            matched = text.op("GLOB")(pattern)
        hits = _never_null(matched)
        return Cond(sa.not_(hits) if node.not_ else hits)

    @on(ast.In)
    def in_(self, node: ast.In, lhs: Any, *options: Any) -> Any:
        prop = _prop(lhs)
        # a value of the other kind never equals a property's value (pandas' isin): it is left out
        kept = [_value(o) for o in options if _fits(prop.kind, o)]
        hits = _never_null(prop.expr.in_(kept)) if kept else sa.false()
        return Cond(sa.not_(hits) if node.not_ else hits)

    @on(ast.IsNull)
    def null(self, node: ast.IsNull, lhs: Any) -> Any:
        prop = _prop(lhs)
        return Cond(prop.expr.is_not(None) if node.not_ else prop.expr.is_(None))

    @on(ast.SpatialComparisonPredicate, subclasses=True)
    def spatial(self, node: ast.SpatialComparisonPredicate, lhs: Any, rhs: Any) -> Any:
        if isinstance(lhs, Geom):
            literal, args = geometry_literal(rhs), (lhs.expr, self._geometry_literal(geometry_literal(rhs)))
        elif isinstance(rhs, Geom):
            literal, args = geometry_literal(lhs), (self._geometry_literal(geometry_literal(lhs)), rhs.expr)
        else:
            raise InvalidParameterError(f"S_{node.op.name} needs the geometry property as one argument")
        test = getattr(sa.func, f"ST_{node.op.name.capitalize()}")(*args)
        if self.source.dialect == "sqlite":  # SpatiaLite answers 1, 0 or -1 (cannot tell)
            test = test == 1
        hits = _never_null(test)
        # every predicate but DISJOINT needs the two boxes to meet: the index finds the candidates
        if node.op.name != "DISJOINT" and self.source.index is not None and not literal.is_empty:
            hits = sa.and_(self.source.index(tuple(float(v) for v in literal.bounds)), hits)  # type: ignore[arg-type]
        return Cond(hits)

    @on(ast.Attribute)
    def attribute(self, node: ast.Attribute) -> Any:
        name = node.name
        if name in GEOMETRY_NAMES:
            return Geom(self.source.geom)
        if name in self.source.properties:
            if self.source.properties[name].kind == DEFERRED:
                raise Untranslatable(name)
            return self.source.properties[name]
        raise InvalidParameterError(
            f"filter: unknown property {name!r}; see /queryables for the properties of this collection"
        )

    def _operand(self, value: Any) -> sa.ColumnElement[Any]:
        if isinstance(value, Prop):
            if value.kind == "text" and self.source.dialect == "postgresql":
                return value.expr.collate("C")  # code-point order, as Python compares text
            return value.expr
        return sa.literal(_value(value))

    def _geometry_literal(self, geometry: BaseGeometry) -> sa.ColumnElement[Any]:
        wkb = sa.literal(shapely.to_wkb(geometry), sa.LargeBinary)
        return sa.func.ST_GeomFromWKB(wkb, self.source.srid)


def _prop(value: Any) -> Prop:
    if isinstance(value, Prop):
        return value
    raise InvalidParameterError("filter: LIKE, IN and IS NULL apply to a property")


INT64 = 2**63


def _value(value: Any) -> Any:
    """A literal as the database can take it: text without NUL, numbers (a boolean as 0/1, an integer
    past 64 bits as a float); anything else is refused (pandas would have compared it as never equal)."""
    if isinstance(value, str):
        if "\x00" in value:
            raise InvalidParameterError("filter: text may not contain NUL characters")
        return value
    if isinstance(value, bool):
        return int(value)
    if isinstance(value, int):
        return value if -INT64 <= value < INT64 else float(value)
    if isinstance(value, float):
        return value
    raise InvalidParameterError("filter: a property is compared with text or a number here")


def _fits(kind: str, value: Any) -> bool:
    if kind == "text":
        return isinstance(value, str)
    if kind == "number":
        return isinstance(value, int | float)
    return True


def _same_kind(lhs: Any, rhs: Any) -> None:
    """The frame path's refusals: geometries compared as values, text with a number."""
    for column, literal in ((lhs, rhs), (rhs, lhs)):
        if isinstance(column, Geom) or isinstance(literal, Geom):
            raise InvalidParameterError("filter: compare geometries with S_INTERSECTS and its kin")
        if isinstance(column, Prop) and not isinstance(literal, Prop):
            if column.kind == "number" and isinstance(literal, str):
                raise InvalidParameterError(f"filter: {column.name} is a number, compared with text")
            if column.kind == "text" and isinstance(literal, int | float):
                raise InvalidParameterError(f"filter: {column.name} is text, compared with a number")
    if isinstance(lhs, Prop) and isinstance(rhs, Prop) and {lhs.kind, rhs.kind} == {"text", "number"}:
        raise InvalidParameterError(f"filter: {lhs.name} and {rhs.name} are not of one kind")


def _like_parts(pattern: str, wildcard: str, single: str, escape: str) -> list[tuple[str, str]]:
    """The pattern as ("any" | "one" | "char", character) items."""
    parts: list[tuple[str, str]] = []
    chars = iter(pattern)
    for char in chars:
        if char == escape:
            parts.append(("char", next(chars, escape)))
        elif char == wildcard:
            parts.append(("any", ""))
        elif char == single:
            parts.append(("one", ""))
        else:
            parts.append(("char", char))
    return parts


def _pg_like(kind: str, char: str) -> str:
    if kind == "any":
        return "%"
    if kind == "one":
        return "_"
    return "\\" + char if char in "%_\\" else char


def _glob(kind: str, char: str) -> str:
    if kind == "any":
        return "*"
    if kind == "one":
        return "?"
    return f"[{char}]" if char in "*?[" else char
