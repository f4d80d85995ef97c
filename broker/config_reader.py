"""Reading a hall's TOML strictly: `ConfigError` (file, key, problem) and the table walker the parsers share.

Every refusal names the file, the key path and what is wrong, and a key nobody read is an error (a
typo must not silently fall back to a default). Imports nothing of the project: broker/config.py and
broker/hours.py build on it.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any


class ConfigError(ValueError):
    """A hall config that cannot be used; str() is the message shown to IT."""

    def __init__(self, path: str, key: str, problem: str) -> None:
        self.path, self.key, self.problem = path, key, problem
        super().__init__(f"{path}: {key}: {problem}")


class Reader:
    """Walks one TOML table, remembering the key path for error messages."""

    def __init__(self, path: str, key: str, table: Any) -> None:
        self.path, self.key = path, key
        if not isinstance(table, dict):
            raise ConfigError(path, key or "(top level)", f"must be a table, got {kind_of(table)}")
        self.table: dict[str, Any] = table
        self.used: set[str] = set()

    def _sub(self, name: str) -> str:
        return f"{self.key}.{name}" if self.key else name

    def error(self, name: str, problem: str) -> ConfigError:
        return ConfigError(self.path, self._sub(name), problem)

    def has(self, name: str) -> bool:
        return name in self.table

    def get(self, name: str, kind: type | tuple[type, ...], default: Any = ..., *, check: Any = None) -> Any:
        self.used.add(name)
        if name not in self.table:
            if default is ...:
                raise self.error(name, "is missing")
            return default
        value = self.table[name]
        if isinstance(value, bool) and kind is not bool and (kind is int or kind == (int, float)):
            raise self.error(name, f"must be a number, got {value!r}")
        if not isinstance(value, kind):
            raise self.error(name, f"must be {_describe(kind)}, got {kind_of(value)} {value!r}")
        if check is not None:
            problem = check(value)
            if problem:
                raise self.error(name, problem)
        return value

    def table_at(self, name: str, *, optional: bool = False) -> Reader | None:
        self.used.add(name)
        if name not in self.table:
            if optional:
                return None
            raise self.error(name, "is missing")
        return Reader(self.path, self._sub(name), self.table[name])

    def tables(self, name: str) -> Iterator[Reader]:
        self.used.add(name)
        items = self.table.get(name)
        if not isinstance(items, list) or not items:
            raise self.error(name, "must be a non-empty array of tables ([[" + self._sub(name) + "]])")
        for index, item in enumerate(items):
            yield Reader(self.path, f"{self._sub(name)}[{index}]", item)

    def done(self) -> None:
        unknown = sorted(set(self.table) - self.used)
        if unknown:
            raise self.error(unknown[0], "is not a known key (a typo?)")


def kind_of(value: Any) -> str:
    return {bool: "a boolean", int: "an integer", float: "a number", str: "a string", list: "an array",
            dict: "a table"}.get(type(value), type(value).__name__)


def _describe(kind: type | tuple[type, ...]) -> str:
    kinds = kind if isinstance(kind, tuple) else (kind,)
    return " or ".join(kind_of(k()) if k is not dict else "a table" for k in kinds)
