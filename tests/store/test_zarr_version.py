"""The store refuses zarr releases without atomic LocalStore writes (review H5, test T30); .ci/run reruns the
crash tests on the oldest allowed zarr and sets ROBOT_STACK_EXPECT_ZARR so this file checks it got it."""

from __future__ import annotations

import os

import pytest
import zarr
from store_data import make_schema

from robot_stack.store import StoreError, TrajectoryStore
from robot_stack.store import trajectory as traj


@pytest.mark.parametrize("version", ["3.0.0", "3.1.2", "3.1.3rc1", "2.18.4", "not-a-version"])
def test_old_or_unparseable_zarr_is_refused(version):
    with pytest.raises(StoreError, match=rf"zarr {version} is installed.*needs zarr >= 3\.1\.3.*pip install"):
        traj.check_zarr_version(version)


@pytest.mark.parametrize("version", ["3.1.3", "3.1.6", "3.2.0"])
def test_new_enough_zarr_is_accepted(version):
    traj.check_zarr_version(version)


def test_open_and_create_check_the_installed_zarr(tmp_path, monkeypatch):
    TrajectoryStore.create(tmp_path / "s.zarr", make_schema(), fsync=False).close()
    monkeypatch.setattr(zarr, "__version__", "3.1.2")
    with pytest.raises(StoreError, match="zarr 3.1.2 is installed"):
        TrajectoryStore.open(tmp_path / "s.zarr")
    with pytest.raises(StoreError, match="zarr 3.1.2 is installed"):
        TrajectoryStore.create(tmp_path / "t.zarr", make_schema(), fsync=False)


def test_ci_runs_the_version_it_asked_for():
    expected = os.environ.get("ROBOT_STACK_EXPECT_ZARR")
    if not expected:
        pytest.skip("only in .ci/run's oldest-zarr pass")
    assert zarr.__version__ == expected, f"imported zarr {zarr.__version__} from {zarr.__file__}"
