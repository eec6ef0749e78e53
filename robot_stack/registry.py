"""String -> config-class registries: every pluggable thing is `XConfig` (registered) + `X` (DESIGN.md §4.2)."""

from __future__ import annotations

import importlib
from collections.abc import Callable
from types import ModuleType
from typing import Generic, TypeVar

T = TypeVar("T")


class UnknownNameError(KeyError):
    """A config named something that is not registered; the message lists what is."""

    def __str__(self) -> str:  # KeyError quotes its message; we want it readable
        return str(self.args[0])


class Registry(Generic[T]):
    def __init__(self, kind: str):
        self.kind = kind
        self._items: dict[str, T] = {}

    def register(self, name: str) -> Callable[[T], T]:
        def deco(obj: T) -> T:
            if name in self._items and self._items[name] is not obj:
                raise ValueError(f"{self.kind} {name!r} is registered twice")
            self._items[name] = obj
            return obj

        return deco

    def get(self, name: str) -> T:
        try:
            return self._items[name]
        except KeyError:
            known = ", ".join(sorted(self._items)) or "(none)"
            raise UnknownNameError(f"unknown {self.kind} {name!r}; known: {known}") from None

    def names(self) -> list[str]:
        return sorted(self._items)

    def __contains__(self, name: str) -> bool:
        return name in self._items


def import_registering_module(module: str, what: str) -> ModuleType:
    """Import `module` (by dotted path, only when `what` is asked for), which registers `what` on import.

    Factories name their backends this way so that `import robot_stack` never needs a vendor SDK or the test
    support package (robot_stack_testing). If `module` itself (not one of its dependencies, whose own error
    says what to install) is missing, the message names the distribution that ships it.
    """
    try:
        return importlib.import_module(module)
    except ModuleNotFoundError as e:
        if e.name is None or not (module == e.name or module.startswith(e.name + ".")):
            raise
        raise ModuleNotFoundError(f"{what} is registered by {module}, which is not importable ({e}); it ships in "
                                  "the robot_stack distribution: reinstall it (pip install -e <repo>, or the wheel)",
                                  name=e.name) from None
