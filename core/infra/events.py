"""The port every domain emits its events through (the webhooks service implements it;
each event's `data` is its domain's own shape, docs/program.md "Webhooks")."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Protocol, TypeAlias

if TYPE_CHECKING:
    from _typeshed import DataclassInstance

# An event's `data`: a dict, or a dataclass (turned into one only when an endpoint wants it).
EventData: TypeAlias = "dict[str, Any] | DataclassInstance"


class Events(Protocol):
    async def emit(self, event_type: str, data: EventData) -> None: ...


class NoEvents:
    """For a core built without webhooks (a few unit tests)."""

    async def emit(self, event_type: str, data: EventData) -> None:
        return None
