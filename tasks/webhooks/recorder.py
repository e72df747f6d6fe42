"""A thread that writes attempt results in batches, so the database work per delivery stays
small and the event loop never waits for it."""

from __future__ import annotations

import queue
import threading
from collections.abc import Callable
from typing import Generic, TypeVar

from leadline.logging import get_logger

log = get_logger(__name__)
T = TypeVar("T")
IDLE_EXIT_SECONDS = 1.0


class BatchRecorder(Generic[T]):
    """Hands queued items to `write` in batches of up to `max_batch`, on one thread.

    The thread is started on demand and ends after a second without work; it is not a daemon,
    so an interpreter that exits still writes what was queued.
    """

    def __init__(self, write: Callable[[list[T]], None], max_batch: int = 200) -> None:
        self._write = write
        self._max_batch = max_batch
        self._queue: queue.SimpleQueue[T] = queue.SimpleQueue()
        self._lock = threading.Condition()
        self._pending = 0
        self._thread: threading.Thread | None = None

    def put(self, item: T) -> None:
        with self._lock:
            self._pending += 1
            self._queue.put(item)
            if self._thread is None:
                self._thread = threading.Thread(
                    target=self._run, name="webhook-recorder", daemon=False
                )
                self._thread.start()

    def wait_idle(self, timeout: float) -> bool:
        """True once everything queued so far has been written."""
        with self._lock:
            return self._lock.wait_for(lambda: self._pending == 0, timeout)

    def _next_batch(self) -> list[T]:
        batch = [self._queue.get(timeout=IDLE_EXIT_SECONDS)]
        while len(batch) < self._max_batch:
            try:
                batch.append(self._queue.get_nowait())
            except queue.Empty:
                break
        return batch

    def _run(self) -> None:
        while True:
            try:
                batch = self._next_batch()
            except queue.Empty:
                with self._lock:
                    if self._queue.empty():
                        self._thread = None
                        return
                continue
            try:
                self._write(batch)
            except Exception as exc:  # rows stay claimed; the sweeper's lease recovers them
                log.error("webhook results not recorded", error=type(exc).__name__)
            with self._lock:
                self._pending -= len(batch)
                self._lock.notify_all()
