"""DESIGN.md §2: only robot_stack/ros imports rclpy or message packages, and `import robot_stack` is light."""

import ast
import re
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1] / "robot_stack"
ROS_IMPORT = re.compile(r"^\s*(import rclpy|from rclpy|from (sensor|std|geometry|diagnostic|builtin_interfaces)\w*)", re.M)


def test_no_ros_imports_outside_ros_package():
    offenders = [str(p.relative_to(ROOT)) for p in ROOT.rglob("*.py")
                 if "ros" not in p.relative_to(ROOT).parts[:1] and ROS_IMPORT.search(p.read_text())]
    assert offenders == []


def test_import_robot_stack_pulls_nothing_heavy():
    code = ("import sys, robot_stack, robot_stack.types, robot_stack.arms.controller, robot_stack.cli.main;"
            "heavy = [m for m in ('torch', 'rclpy', 'mujoco', 'cv2') if m in sys.modules]; print(heavy)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"


def test_learner_services_do_not_import_their_registry():
    # The registry (learn/services.py) builds the services lazily; the services take their shared thread control
    # from learn/background.py, so there is no services <-> bc / rl_service import circle (issue 14).
    for name in ("bc.py", "rl_service.py", "background.py"):
        text = (ROOT / "learn" / name).read_text()
        assert "robot_stack.learn.services" not in text, f"learn/{name} imports the service registry"


def _imported_modules(path: Path) -> set[str]:
    """Every module an `import` / `from ... import` statement in `path` names (lazy imports inside functions too)."""
    names: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            names |= {a.name for a in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module)
    return names


def _offenders(package: str, forbidden: tuple[str, ...]) -> dict[str, list[str]]:
    out = {}
    for p in sorted((ROOT / package).rglob("*.py")):
        bad = sorted(m for m in _imported_modules(p) if any(m == f or m.startswith(f + ".") for f in forbidden))
        if bad:
            out[str(p.relative_to(ROOT.parent))] = bad
    return out


def test_launch_files_and_nodes_do_not_import_the_command_line():
    # The profile loader lives in robot_stack/conf/profiles.py, below both the supervisor (cli) and the launch
    # files (ros); the ros -> cli import it replaced (issue 14) must not come back, nor conf -> cli/ros.
    assert _offenders("ros", ("robot_stack.cli",)) == {}
    assert _offenders("conf", ("robot_stack.cli", "robot_stack.ros")) == {}


def test_the_product_package_never_imports_its_test_support():
    # SDK fakes live in robot_stack_testing; the factories name them by dotted path (a string), so a product
    # install that drops the test support still imports (DESIGN.md §4.8: fakes registered in the real registries).
    assert _offenders("", ("robot_stack_testing",)) == {}
    assert not list(ROOT.rglob("fake_*.py")), "SDK fakes belong in robot_stack_testing/, not the product package"


def test_the_fakes_register_in_the_real_registries_by_name():
    code = ("import sys; from robot_stack.arms.factory import make_arm; from robot_stack.cameras.factory import make_camera;"
            "a = make_arm('fake_interbotix', {}); c = make_camera('f', {'type': 'fake_realsense', 'serial': '1',"
            " 'height': 8, 'width': 8, 'fps_hz': 30});"
            "print(type(a).__module__, type(c).__module__, 'robot_stack_testing' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.split()
    assert out == ["robot_stack_testing.fake_interbotix", "robot_stack_testing.fake_realsense", "True"]
