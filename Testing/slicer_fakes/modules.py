"""Strict module objects: reading a name the fake does not provide raises AttributeError, as it would
for a name the real module does not have (the fakes provide only what the panel uses)."""

from __future__ import annotations

import types


class StrictModule(types.ModuleType):
    """A module whose missing attributes say they are not part of the fake (and may not exist in Slicer)."""

    def __getattr__(self, name):
        if name.startswith("__") and name.endswith("__"):
            raise AttributeError(name)
        raise AttributeError(f"module '{self.__name__}' has no attribute '{name}' "
                             f"(not provided by the strict fake; see Testing/slicer_api_facts.md)")


def strict_module(name: str, doc: str, **attributes) -> StrictModule:
    module = StrictModule(name, doc)
    for key, value in attributes.items():
        setattr(module, key, value)
    return module
