"""The check every API test's client runs (tests/contract.py): an answer's keys are its model's."""

from __future__ import annotations

from pydantic import BaseModel, Field

from tests.contract import mismatches


class Item(BaseModel):
    id: int
    name: str | None


class Page(BaseModel):
    items: list[Item]
    next_cursor: str | None = Field(alias="nextCursor")
    first: Item | None


def test_an_answer_with_exactly_the_models_keys_matches() -> None:
    answer = {"items": [{"id": 1, "name": None}], "nextCursor": None, "first": None}
    assert mismatches(answer, Page) == []


def test_a_leaked_a_missing_and_a_nested_key_are_each_caught() -> None:
    answer = {
        "items": [{"id": 1, "name": "a"}, {"id": 2, "password_hash": "x"}],
        "first": {"id": 3, "name": "c", "email": "c@example.com"},
        "internal": True,
    }
    assert sorted(mismatches(answer, Page)) == sorted(
        [
            ".internal: not in Page",
            ".nextCursor: missing",
            ".items[1].password_hash: not in Item",
            ".items[1].name: missing",
            ".first.email: not in Item",
        ]
    )


def test_a_list_answer_is_checked_item_by_item() -> None:
    assert mismatches([{"id": 1, "name": None}, {"id": 2}], list[Item]) == ["[1].name: missing"]
