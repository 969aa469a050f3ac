"""blueprint.errors: errors of merging, versioning and publishing blueprints."""

from __future__ import annotations

from layers.errors import OneBlueprintError


class BlueprintError(OneBlueprintError):
    code = "blueprint_error"


class BlueprintNotFoundError(BlueprintError, LookupError):
    code = "blueprint_not_found"


class NoPublishedBlueprintError(BlueprintNotFoundError):
    code = "no_published_blueprint"


class BlueprintImmutableError(BlueprintError):
    """A published version cannot be changed or published again."""

    code = "blueprint_immutable"


class PrecedenceError(BlueprintError, ValueError):
    code = "invalid_precedence"


class NoLayersError(BlueprintError, ValueError):
    code = "no_layers"


class LayerNotFoundError(BlueprintError, LookupError):
    code = "layer_not_found"


class MergeInputError(BlueprintError, ValueError):
    """A layer handed to the merge cannot be used (kind, CRS, geometry, parameters)."""

    code = "merge_input"


class CoverageCheckError(BlueprintError):
    """The merged pieces failed the final coverage check (overlaps, gaps or invalid pieces)."""

    code = "coverage_invalid"
