"""Background batch preparation so data loading overlaps the gradient step.

    [prefetch thread] make_batch(step) for step in steps ─► bounded queue (depth) ─► [train thread] iterate

`make_batch` must be a pure function of the step (the RL dataset seeds its sampler per step), so prefetching
does not change which batch a step sees and a resumed run sees the same batches as an uninterrupted one.
"""

from __future__ import annotations

import queue
import threading
from collections.abc import Callable, Iterable, Iterator
from typing import Any

_DONE = object()


def prefetch(steps: Iterable[int], make_batch: Callable[[int], Any], depth: int = 2) -> Iterator[tuple[int, Any]]:
    """Yield (step, make_batch(step)) in order, computed `depth` ahead on a thread (depth 0: inline)."""
    if depth <= 0:
        for s in steps:
            yield s, make_batch(s)
        return
    q: queue.Queue = queue.Queue(maxsize=depth)
    stop = threading.Event()

    def work() -> None:
        try:
            for s in steps:
                if stop.is_set():
                    return
                q.put((s, make_batch(s)))
        except BaseException as e:  # re-raised on the training thread
            q.put(e)
            return
        q.put(_DONE)

    thread = threading.Thread(target=work, name="batch-prefetch", daemon=True)
    thread.start()
    try:
        while True:
            item = q.get()
            if item is _DONE:
                return
            if isinstance(item, BaseException):
                raise item
            yield item
    finally:
        stop.set()
        while thread.is_alive():   # unblock a producer waiting on a full queue
            try:
                q.get_nowait()
            except queue.Empty:
                thread.join(0.01)
