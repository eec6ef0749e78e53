"""A tiny random OpenVLA in the release layout, built once per session (robot_stack_testing/tiny_openvla.py)."""

from __future__ import annotations

import os

import pytest

pytest.importorskip("transformers")
pytest.importorskip("peft")
os.environ["HF_HUB_OFFLINE"] = "1"   # nothing in these tests may reach the network

from robot_stack_testing.tiny_openvla import INSTRUCTION, build_tiny_openvla, random_image  # noqa: E402


@pytest.fixture(scope="session")
def tiny_base(tmp_path_factory):
    return build_tiny_openvla(tmp_path_factory.mktemp("openvla_tiny") / "openvla-7b-tiny", seed=0)


@pytest.fixture(scope="session")
def tiny_base_two_datasets(tmp_path_factory):
    return build_tiny_openvla(tmp_path_factory.mktemp("openvla_tiny2") / "base", seed=0, n_datasets=2)


@pytest.fixture
def obs():
    return {"observation.images.front": random_image(0)}


@pytest.fixture
def base_policy(tiny_base):
    from robot_stack.policies.openvla.policy import OpenVLAPolicy

    return OpenVLAPolicy.from_base(tiny_base, deploy_task=INSTRUCTION)
