"""checks.errors: errors of screening parcels."""

from __future__ import annotations

from layers.errors import OneBlueprintError


class CheckError(OneBlueprintError):
    code = "check_error"


class ParcelOutsideCityError(CheckError, ValueError):
    code = "parcel_outside_city"


class UnknownProjectTypeError(CheckError, ValueError):
    code = "unknown_project_type"


class RulesError(CheckError, ValueError):
    code = "invalid_rules"


class CheckNotFoundError(CheckError, LookupError):
    code = "check_not_found"


class NoParcelsError(CheckError, ValueError):
    code = "no_parcels"


class DuplicateParcelIdError(CheckError, ValueError):
    """Two submitted parcels share one parcel_id (results are keyed by it)."""

    code = "duplicate_parcel_id"


class InvalidDeclaredError(CheckError, ValueError):
    """A declared planning value (容积率, 建筑密度…) is not a number, or out of its range; names the field."""

    code = "invalid_declared"
