"""Log records a test reads back. create_app resets the root logger's handlers, so pytest's caplog sees nothing
of what an in-process app logs; a handler on the named logger does."""
from __future__ import annotations

import contextlib
import logging
from collections.abc import Iterator


class _Collector(logging.Handler):
    def __init__(self) -> None:
        super().__init__()
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)


@contextlib.contextmanager
def captured_records(logger_name: str) -> Iterator[list[logging.LogRecord]]:
    """The records `logger_name` (and its children) emit inside the block."""
    collector = _Collector()
    logger = logging.getLogger(logger_name)
    logger.addHandler(collector)
    try:
        yield collector.records
    finally:
        logger.removeHandler(collector)
