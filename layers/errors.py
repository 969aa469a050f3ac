"""layers.errors: domain errors with a stable code and a user message; no HTTP here."""

from __future__ import annotations


class OneBlueprintError(Exception):
    """Root of every domain error in the service.

    ``code`` is stable and machine-readable; ``user_message`` is safe to show a user
    (it names the file, feature, field or CRS at fault); ``detail`` may carry more for logs.
    """

    code = "error"

    def __init__(self, user_message: str, *, detail: str | None = None) -> None:
        super().__init__(user_message)
        self.user_message = user_message
        self.detail = detail or user_message


class LayerError(OneBlueprintError):
    """A plan layer or parcel file could not be used."""

    code = "layer_error"


class UnreadableLayerError(LayerError, ValueError):
    code = "unreadable_file"


class UnsupportedFormatError(LayerError, ValueError):
    code = "unsupported_format"


class HostileFileError(LayerError, ValueError):
    """Zip bombs, path traversal, files beyond the size limits."""

    code = "hostile_file"


class FileTooLargeError(LayerError, ValueError):
    code = "file_too_large"


class AmbiguousLayerError(LayerError, ValueError):
    """A container holds several layers and none was named."""

    code = "ambiguous_layer"


class EncodingError(LayerError, ValueError):
    code = "encoding_error"


class CRSError(LayerError, ValueError):
    code = "crs_error"


class CRSMissingError(CRSError):
    code = "crs_missing"


class CRSConflictError(CRSError):
    code = "crs_conflict"


class CRSMismatchError(CRSError):
    """Two frames meant to be compared are in different CRSs."""

    code = "crs_mismatch"


class CoordinatesOutOfRangeError(CRSError):
    """Coordinates do not fit the (declared or detected) CRS: swapped axes, wrong zone..."""

    code = "coordinates_out_of_range"


class NonFiniteCoordinatesError(LayerError, ValueError):
    """A vertex is NaN or infinite (``NaN``, ``Infinity``, ``1e400`` in JSON; ``nan`` in a text file)."""

    code = "non_finite_coordinates"


class DuplicateIdError(LayerError, ValueError):
    """Two parcels carry the same number in the file's parcel-number column (never renumbered silently)."""

    code = "duplicate_parcel_id"


class GeometryTypeError(LayerError, ValueError):
    code = "geometry_type"


class EmptyLayerError(LayerError, ValueError):
    code = "empty_layer"


class UnknownKindError(LayerError, KeyError):
    code = "unknown_kind"

    def __str__(self) -> str:  # KeyError would quote the message
        return self.user_message


class CatalogueError(LayerError, ValueError):
    code = "catalogue_error"


class LayerWriteError(LayerError, OSError):
    """An output file could not be written (the driver refused a field, a name, the disk...)."""

    code = "write_failed"


class WebMapOffsetError(CRSError):
    """Coordinates that look like a Chinese web map's offset datum (GCJ-02, BD-09) read as WGS 84."""

    code = "crs_web_map_offset"


class OldDatumError(CRSError):
    """Beijing 1954 / Xi'an 1980 input without the transformation parameters to bring it to CGCS2000."""

    code = "crs_old_datum"


class UnknownLandUseError(LayerError, ValueError):
    """A detailed-plan feature carries a land-use code the classification does not know."""

    code = "unknown_land_use_code"


class InvalidAttributeError(LayerError, ValueError):
    """A required attribute is missing or unknown (assessment type, the land-use field itself)."""

    code = "invalid_attribute"


class FieldMappingError(LayerError, ValueError):
    """A ``--field NAME=COLUMN`` override names no field of the kind, or a column the file lacks."""

    code = "invalid_field_mapping"
