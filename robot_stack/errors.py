"""Errors an operator can fix: entry points print their message (which names the fix) without a traceback."""

from __future__ import annotations


def operator_errors() -> tuple[type[BaseException], ...]:
    """The exception types whose message is the whole story (imported lazily: no torch/zarr at import)."""
    from robot_stack.arms.safety import CommandRejected
    from robot_stack.conf import ConfigError
    from robot_stack.conf.profiles import ProfileError
    from robot_stack.policies.catalog import PolicyManifestError
    from robot_stack.registry import UnknownNameError

    types: list[type[BaseException]] = [ConfigError, ProfileError, PolicyManifestError, UnknownNameError,
                                        CommandRejected]
    try:
        from robot_stack.store.schema import StoreError

        types.append(StoreError)
    except ImportError:  # zarr missing: nothing of the store can have raised
        pass
    try:
        from robot_stack.policies.checkpoint import CheckpointError

        types.append(CheckpointError)
    except ImportError:  # torch missing (a ROS-only install)
        pass
    return tuple(types)
