"""api.ogc.filter: CQL2 text filters (OGC API – Features Part 3): parsing, and evaluation over a frame (the
reference api.ogc.sql_filter translates from, and the path of a filter naming a layer's dates or booleans)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar, cast

import geopandas as gpd
import lark
import pandas as pd
from pygeofilter import ast, values
from pygeofilter.backends.evaluator import Evaluator, handle
from pygeofilter.parsers.cql2_text import parse
from pygeofilter.util import like_pattern_to_re
from pyproj import CRS
from shapely.geometry import box, shape
from shapely.geometry.base import BaseGeometry

from api.errors import InvalidParameterError
from api.ogc.collections import ID_COLUMN
from api.ogc.crs import OfferedCrs, to_work

# "cql-text" is the pre-standard name GDAL's OAPIF driver sends; its comparisons and AND/OR are CQL2 text
FILTER_LANGS = ("cql2-text", "cql-text")
MAX_FILTER_CHARS = 20_000
GEOMETRY_NAMES = ("geometry", "geom")

Handler = TypeVar("Handler", bound=Callable[..., Any])


def on(*nodes: Any, subclasses: bool = False) -> Callable[[Handler], Handler]:
    """pygeofilter's ``handle`` decorator, typed."""
    return cast(Callable[[Handler], Handler], handle(*nodes, subclasses=subclasses))


COMPARE: dict[str, Callable[[Any, Any], Any]] = {
    "=": lambda a, b: a == b,
    "<>": lambda a, b: a != b,
    "<": lambda a, b: a < b,
    "<=": lambda a, b: a <= b,
    ">": lambda a, b: a > b,
    ">=": lambda a, b: a >= b,
}
# spatial predicate -> (GeoSeries method, the method with the arguments swapped)
SPATIAL = {
    "INTERSECTS": ("intersects", "intersects"),
    "DISJOINT": ("disjoint", "disjoint"),
    "EQUALS": ("geom_equals", "geom_equals"),
    "TOUCHES": ("touches", "touches"),
    "CROSSES": ("crosses", "crosses"),
    "OVERLAPS": ("overlaps", "overlaps"),
    "WITHIN": ("within", "contains"),
    "CONTAINS": ("contains", "within"),
}


def parse_filter(text: str, lang: str | None) -> ast.Node:
    """The syntax tree of a CQL2 text filter; a 400 that says where the text stops making sense."""
    if (lang or "cql2-text") not in FILTER_LANGS:
        raise InvalidParameterError(f"filter-lang={lang!r} is not supported; use cql2-text")
    if len(text) > MAX_FILTER_CHARS:
        raise InvalidParameterError(f"filter is longer than {MAX_FILTER_CHARS:,} characters")
    try:
        return parse(text)
    except lark.exceptions.UnexpectedInput as exc:
        at = getattr(exc, "column", None)
        near = text[max(0, (at or 1) - 1) :][:30]
        raise InvalidParameterError(
            f"filter is not valid CQL2 text (character {at}, near {near!r})"
        ) from None
    except RecursionError:
        raise InvalidParameterError("filter nests too deeply") from None
    except (lark.exceptions.LarkError, ValueError, TypeError) as exc:
        raise InvalidParameterError(f"filter is not valid CQL2 text: {str(exc).splitlines()[0]}") from None


def evaluate(evaluator: Evaluator, tree: ast.Node) -> Any:
    """Run a pygeofilter evaluator (on a frame or into SQL); what it cannot do is the caller's 400."""
    try:
        return evaluator.evaluate(tree)
    except InvalidParameterError:
        raise
    except NotImplementedError:
        raise InvalidParameterError("filter uses an operator this service does not support") from None
    except RecursionError:
        raise InvalidParameterError("filter nests too deeply (split it or use IN)") from None
    except (TypeError, ValueError) as exc:
        raise InvalidParameterError(f"filter cannot be evaluated: {exc}") from None


def apply_filter(
    frame: gpd.GeoDataFrame, tree: ast.Node, filter_crs: OfferedCrs, work_crs: CRS
) -> gpd.GeoDataFrame:
    """The rows of ``frame`` (working CRS) for which the filter holds."""
    result = evaluate(FrameEvaluator(frame, filter_crs, work_crs), tree)
    if isinstance(result, pd.Series):
        return frame[result.fillna(False).astype(bool).to_numpy()]
    if isinstance(result, bool):
        return frame if result else frame.iloc[0:0]
    raise InvalidParameterError("filter is not a condition (it must be true or false for each feature)")


class FrameEvaluator(Evaluator):  # type: ignore[misc]
    """Turns a pygeofilter tree into a boolean mask over the frame; literals become Python values."""

    def __init__(self, frame: gpd.GeoDataFrame, filter_crs: OfferedCrs, work_crs: CRS) -> None:
        self.frame = frame
        self.filter_crs = filter_crs
        self.work_crs = work_crs

    @on(ast.Not)
    def not_(self, node: ast.Not, sub: Any) -> Any:
        return ~_mask(sub)

    @on(ast.And, ast.Or)
    def combination(self, node: ast.Combination, lhs: Any, rhs: Any) -> Any:
        return _mask(lhs) & _mask(rhs) if node.op.value == "AND" else _mask(lhs) | _mask(rhs)

    @on(ast.Comparison, subclasses=True)
    def comparison(self, node: ast.Comparison, lhs: Any, rhs: Any) -> Any:
        _same_kind(lhs, rhs)
        return COMPARE[node.op.value](lhs, rhs)

    @on(ast.Between)
    def between(self, node: ast.Between, lhs: Any, low: Any, high: Any) -> Any:
        _same_kind(lhs, low)
        inside = (lhs >= low) & (lhs <= high)
        return ~inside if node.not_ else inside

    @on(ast.Like)
    def like(self, node: ast.Like, lhs: Any) -> Any:
        regex = like_pattern_to_re(node.pattern, node.nocase, node.wildcard, node.singlechar, "\\")
        hits = _series(lhs).astype(str).str.match(regex)
        return ~hits if node.not_ else hits

    @on(ast.In)
    def in_(self, node: ast.In, lhs: Any, *options: Any) -> Any:
        hits = _series(lhs).isin(options)
        return ~hits if node.not_ else hits

    @on(ast.IsNull)
    def null(self, node: ast.IsNull, lhs: Any) -> Any:
        hits = _series(lhs).isna()
        return ~hits if node.not_ else hits

    @on(ast.SpatialComparisonPredicate, subclasses=True)
    def spatial(self, node: ast.SpatialComparisonPredicate, lhs: Any, rhs: Any) -> Any:
        method, swapped = SPATIAL[node.op.name]
        if isinstance(lhs, gpd.GeoSeries):
            return getattr(lhs, method)(geometry_literal(rhs))
        if isinstance(rhs, gpd.GeoSeries):
            return getattr(rhs, swapped)(geometry_literal(lhs))
        raise InvalidParameterError(f"S_{node.op.name} needs the geometry property as one argument")

    @on(ast.Attribute)
    def attribute(self, node: ast.Attribute) -> Any:
        name = node.name
        if name in GEOMETRY_NAMES:
            return self.frame.geometry
        if name == "id":
            return self.frame[ID_COLUMN]
        if name not in self.frame.columns or name == ID_COLUMN or name == self.frame.geometry.name:
            raise InvalidParameterError(
                f"filter: unknown property {name!r}; see /queryables for the properties of this collection"
            )
        return self.frame[name]

    @on(values.Geometry)
    def geometry(self, node: values.Geometry) -> BaseGeometry:
        return to_work(shape(node.geometry), self.filter_crs, self.work_crs)

    @on(values.Envelope)
    def envelope(self, node: values.Envelope) -> BaseGeometry:
        return self._box([node.x1, node.y1, node.x2, node.y2])

    @on(ast.Function)
    def function(self, node: ast.Function, *arguments: Any) -> Any:
        if node.name.lower() == "bbox" and len(arguments) in (4, 6):
            return self._box(list(arguments))
        raise InvalidParameterError(f"filter: function {node.name}() is not supported")

    @on(ast.TemporalPredicate, ast.Arithmetic, subclasses=True)
    def unsupported(self, node: ast.Node, *args: Any) -> Any:
        raise InvalidParameterError(f"filter: {type(node).__name__} is not supported by this service")

    @on(*values.LITERALS)
    def literal(self, node: Any) -> Any:
        return node

    def _box(self, numbers: list[Any]) -> BaseGeometry:
        if not all(isinstance(n, int | float) for n in numbers):
            raise InvalidParameterError("filter: a bounding box needs four numbers")
        if len(numbers) == 6:
            numbers = [numbers[0], numbers[1], numbers[3], numbers[4]]
        return to_work(box(*numbers), self.filter_crs, self.work_crs)


def _mask(value: Any) -> Any:
    if isinstance(value, pd.Series):
        return value.fillna(False).astype(bool)
    if isinstance(value, bool):
        return value
    raise InvalidParameterError("filter: AND, OR and NOT combine conditions, not values")


def _series(value: Any) -> pd.Series:
    if isinstance(value, pd.Series) and not isinstance(value, gpd.GeoSeries):
        return value
    raise InvalidParameterError("filter: LIKE, IN and IS NULL apply to a property")


def geometry_literal(value: Any) -> BaseGeometry:
    if isinstance(value, BaseGeometry):
        return value
    raise InvalidParameterError("filter: a spatial predicate needs a geometry literal (WKT or BBOX)")


def _same_kind(lhs: Any, rhs: Any) -> None:
    """Refuse comparing a text property with a number (pandas would compare them as never equal)."""
    for column, literal in ((lhs, rhs), (rhs, lhs)):
        if isinstance(column, gpd.GeoSeries) or isinstance(literal, gpd.GeoSeries):
            raise InvalidParameterError("filter: compare geometries with S_INTERSECTS and its kin")
        if isinstance(column, pd.Series) and not isinstance(literal, pd.Series):
            numeric = pd.api.types.is_numeric_dtype(column) and not pd.api.types.is_bool_dtype(column)
            if numeric and isinstance(literal, str):
                raise InvalidParameterError(f"filter: {column.name} is a number, compared with text")
            if pd.api.types.is_object_dtype(column) and isinstance(literal, int | float) and not (
                isinstance(literal, bool)
            ):
                raise InvalidParameterError(f"filter: {column.name} is text, compared with a number")
