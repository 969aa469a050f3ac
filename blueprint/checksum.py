"""blueprint.checksum: one fingerprint of what a version was built from (layers, precedence, tolerance)."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from typing import Any


def blueprint_checksum(version_meta: Mapping[str, Any]) -> str:
    """sha256 over the version's layers' checksums, precedence and tolerance; "" without layers."""
    layers = sorted(
        (str(ref.get("kind")), str(ref.get("name")), str(ref.get("checksum")))
        for ref in version_meta.get("layers") or []
    )
    text = json.dumps(
        {
            "layers": layers,
            "precedence": version_meta.get("precedence"),
            "tolerance_m": version_meta.get("tolerance_m"),
        },
        sort_keys=True,
        ensure_ascii=False,
    )
    return hashlib.sha256(text.encode()).hexdigest() if layers else ""
