"""Shared fixtures for the store tests: a tiny rig schema and deterministic episodes (seeded by index)."""

from __future__ import annotations

import pytest
from store_data import CAMERAS, N_JOINTS, make_episode, make_schema  # noqa: F401

from robot_stack.store import StoreSchema


@pytest.fixture
def schema() -> StoreSchema:
    return make_schema()


@pytest.fixture
def episode():
    return make_episode
