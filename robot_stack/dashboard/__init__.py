"""Operator dashboard: a small web page that shows a running rig live and carries its e-stop (issue 14).

    ROS graph ──topics──► robot_stack/ros/dashboard_node.py (the one bridge, rclpy) ──plain data──┐
        ▲                                                                                         ▼
        └──services (estop, inference/rollback)◄── commands ◄── DashboardHub (hub.py, thread-safe) ◄─┐
                                                                    ▲                             │
    browser ◄──HTTP + WebSocket── app.py (FastAPI, uvicorn) ────────┘     store_view.py (zarr store,
                                   static/ (HTML/JS/CSS, shipped here)    checkpoint dir; no ROS)

No module here imports rclpy: the web server's request handlers only read the hub and queue commands on it;
the bridge node drains the queue on its ROS thread. Install with the `dashboard` extra.
"""
