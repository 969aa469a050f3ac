"""blueprint.piece_table: a batch's pieces as one arrow table (GeoParquet columns), built without pandas."""

from __future__ import annotations

import json

import geopandas as gpd
import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
from geopandas.io.arrow import _geopandas_to_arrow
from pyproj import CRS

from blueprint.conflicts import NEEDS_ESCAPE
from blueprint.merge import _Combo, _Features, _Pieces, source_fragment_ends


def source_fragments(feats: _Features, needed: np.ndarray) -> pa.Array:
    """The JSON object text of each feature in ``needed`` (as merge._source_fragments, in arrow)."""
    heads, tails = source_fragment_ends(feats.layers)
    layer_of = feats.layer[needed]
    fids = pa.array([feats.fid[f] for f in needed.tolist()], pa.string())
    quoted = pc.binary_join_element_wise('"', fids, '"', "")
    special = pc.match_substring_regex(fids, NEEDS_ESCAPE).to_numpy(zero_copy_only=False).astype(bool)
    if special.any():  # rare: ids with a quote, backslash or control character, encoded by json
        texts = quoted.to_pylist()
        for i in np.flatnonzero(special).tolist():
            texts[i] = json.dumps(feats.fid[int(needed[i])], ensure_ascii=False)
        quoted = pa.array(texts, pa.string())
    return pc.binary_join_element_wise(
        pa.array(heads, pa.string()).take(layer_of), quoted, pa.array(tails, pa.string()).take(layer_of), ""
    )


def sources_column(pieces: _Pieces, feats: _Features) -> pa.Array:
    """Each piece's ``sources`` JSON, the same text as merge._sources_json, joined by arrow kernels."""
    order = np.lexsort((pieces.pair_feature, feats.kind[pieces.pair_feature], pieces.pair_piece))
    piece_sorted = pieces.pair_piece[order]
    feat_sorted = pieces.pair_feature[order]
    needed = np.unique(feat_sorted)
    texts = source_fragments(feats, needed).take(np.searchsorted(needed, feat_sorted))
    offsets = np.searchsorted(piece_sorted, np.arange(len(pieces.geoms) + 1)).astype(np.int32)
    lists = pa.ListArray.from_arrays(pa.array(offsets, pa.int32()), texts)
    return pc.binary_join_element_wise("[", pc.binary_join(lists, ", "), "]", "")


def pieces_table(pieces: _Pieces, feats: _Features, combos: dict[int, _Combo], areas: dict[str, np.ndarray],
                 crs: CRS) -> pa.Table:
    """The batch's piece columns (all but ``piece_id``) with GeoParquet metadata, as ``to_parquet`` of
    the equivalent GeoDataFrame writes them (strings as large_string, geometry as WKB)."""
    codes, inverse = np.unique(pieces.code, return_inverse=True)
    per_code = [combos[c] for c in codes.tolist()]

    def by_code(values: list[str]) -> pa.Array:
        return pa.array(values, pa.large_string()).take(inverse)

    # geopandas' own encoder: the geometry field and the "geo" metadata exactly as to_parquet writes them
    geo = _geopandas_to_arrow(gpd.GeoDataFrame(geometry=gpd.GeoSeries(pieces.geoms, crs=crs)), index=False)
    columns = {
        "kind": by_code([c.kind for c in per_code]),
        "kinds": by_code([c.kinds for c in per_code]),
        "covered_by": by_code([c.covered_by for c in per_code]),
        "sources": sources_column(pieces, feats).cast(pa.large_string()),
        **{name: pa.array(values, pa.float64()) for name, values in areas.items()},
    }
    fields = [pa.field(name, col.type) for name, col in columns.items()] + [geo.schema.field("geometry")]
    schema = pa.schema(fields, metadata={b"geo": geo.schema.metadata[b"geo"]})
    return pa.Table.from_arrays([*columns.values(), geo["geometry"]], schema=schema)
