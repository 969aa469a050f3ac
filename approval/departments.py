"""approval.departments: the departments asked for opinions, read from a TOML file (configuration)."""

from __future__ import annotations

import re
import tomllib
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from importlib import resources
from pathlib import Path

from approval.errors import DepartmentsError, UnknownDepartmentError

KEY = re.compile(r"^[a-z][a-z0-9_]{1,47}$")


@dataclass(frozen=True)
class Department:
    key: str
    name_zh: str
    name_en: str

    def as_dict(self) -> dict[str, str]:
        return {"key": self.key, "name_zh": self.name_zh, "name_en": self.name_en}


class Departments(Mapping[str, Department]):
    """Departments by key, in file order."""

    def __init__(self, items: list[Department]) -> None:
        self._items = {d.key: d for d in items}

    def __getitem__(self, key: str) -> Department:
        try:
            return self._items[key]
        except KeyError:
            raise UnknownDepartmentError(
                f"unknown department '{key}'; departments: {', '.join(self._items)} 未知部门"
            ) from None

    def __contains__(self, key: object) -> bool:
        return key in self._items

    def get(self, key: str, default: Department | None = None) -> Department | None:  # type: ignore[override]
        return self._items.get(key, default)

    def __iter__(self) -> Iterator[str]:
        return iter(self._items)

    def __len__(self) -> int:
        return len(self._items)

    def require(self, keys: list[str]) -> list[Department]:
        """The named departments (each once, in the order given); unknown keys fail."""
        seen: dict[str, Department] = {}
        for key in keys:
            seen.setdefault(key, self[key])
        return list(seen.values())


def load_departments(path: Path | None = None) -> Departments:
    """The departments in ``path``, or the built-in ``approval/departments.toml``."""
    try:
        if path is None:
            text = resources.files("approval").joinpath("departments.toml").read_text(encoding="utf-8")
        else:
            text = Path(path).read_text(encoding="utf-8")
        doc = tomllib.loads(text)
    except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError) as exc:
        raise DepartmentsError(f"departments file {path}: {exc}") from exc
    table = doc.get("departments")
    if not isinstance(table, dict) or not table:
        raise DepartmentsError(f"departments file {path or 'built-in'}: needs [departments.<key>] tables")
    items = []
    for key, entry in table.items():
        if not KEY.fullmatch(key):
            raise DepartmentsError(f"department key '{key}': use lower-case letters, digits and _")
        if not isinstance(entry, dict) or not all(
            isinstance(entry.get(f), str) for f in ("name_zh", "name_en")
        ):
            raise DepartmentsError(f"department '{key}': name_zh and name_en are required")
        items.append(Department(key, entry["name_zh"].strip(), entry["name_en"].strip()))
    return Departments(items)
