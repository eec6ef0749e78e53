"""Set another node's parameters through the standard rcl_interfaces SetParameters service, synchronously.

Used where an order matters and a topic cannot promise it: the practice node sets the inference node's episode
mode (task language, exploration) and must know it took effect before it enables control. `node` must be spun by
some executor thread (RigClient's is), because this waits on the reply from the calling thread.
"""

from __future__ import annotations

import threading

from rcl_interfaces.srv import SetParameters
from rclpy.parameter import Parameter


class ParameterRefused(RuntimeError):
    pass


def set_remote_parameters(node, target: str, values: dict, timeout_s: float = 5.0) -> None:
    """Set `values` (name -> bool | int | float | str) on node `target` (its name, relative to `node`'s namespace,
    or fully qualified). Raises TimeoutError naming the node, or ParameterRefused with the node's reason."""
    service = f"{target}/set_parameters"
    clients = getattr(node, "_robot_stack_param_clients", None)
    if clients is None:
        clients = node._robot_stack_param_clients = {}
    if service not in clients:
        clients[service] = node.create_client(SetParameters, service)
    client = clients[service]
    if not client.wait_for_service(timeout_sec=timeout_s):
        raise TimeoutError(f"{service} is not up after {timeout_s:.0f} s; is node {target!r} running?")
    req = SetParameters.Request()
    req.parameters = [Parameter(k, value=v).to_parameter_msg() for k, v in values.items()]
    fut = client.call_async(req)
    done = threading.Event()
    fut.add_done_callback(lambda _: done.set())
    if not done.wait(timeout_s):
        raise TimeoutError(f"{service} did not answer within {timeout_s:.0f} s; is node {target!r} alive?")
    for name, result in zip(values, fut.result().results, strict=True):
        if not result.successful:
            raise ParameterRefused(f"node {target!r} refused {name}={values[name]!r}: {result.reason}")
