"""A learner thread that dies is reported, never silent (issue 11: 'a learner thread that dies does so silently')."""

from __future__ import annotations

import logging

from robot_stack.learn.background import BackgroundService


class _Dies(BackgroundService):
    def run(self):
        raise RuntimeError("replay pool ran out of memory")


class _Finishes(BackgroundService):
    def run(self):
        self._stop.wait(0.01)


def test_thread_death_is_kept_and_logged(caplog):
    svc = _Dies()
    with caplog.at_level(logging.ERROR):
        svc.start()
        svc.join(5.0)
    assert not svc.alive
    assert svc.error == "RuntimeError: replay pool ran out of memory"
    assert any("learner thread died" in r.getMessage() and "restart the learner" in r.getMessage()
               for r in caplog.records)


def test_a_clean_exit_is_not_an_error():
    svc = _Finishes()
    svc.start()
    svc.join(5.0)
    assert not svc.alive and svc.error is None
