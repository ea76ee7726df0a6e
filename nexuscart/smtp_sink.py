"""A local SMTP server that keeps every message it receives as a `.eml` file: `make run`'s mail server when SMTP_URL
is not set (the launcher owns it like localstripe), and the tests' SMTP server. Nothing is relayed anywhere.

    python -m nexuscart.smtp_sink --dir .data/mail --port 2525

Each message is written to `<dir>/<UTC time>-<random>.eml` (written to a temporary name, then renamed, so a
reader never sees half a message), with the envelope sender and recipients as X-Sink-* headers on top."""
from __future__ import annotations

import argparse
import dataclasses
import os
import secrets
import signal
import socket
import subprocess
import sys
import threading
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from aiosmtpd.controller import Controller


class FileSink:
    """aiosmtpd handler: every accepted message becomes one .eml file in `directory`."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory
        directory.mkdir(parents=True, exist_ok=True)

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        content: bytes = envelope.original_content or envelope.content
        name = f"{datetime.now(UTC):%Y%m%dT%H%M%S%f}-{secrets.token_hex(4)}"
        header = (f"X-Sink-Mail-From: {envelope.mail_from}\r\n"
                  f"X-Sink-Rcpt-To: {', '.join(envelope.rcpt_tos)}\r\n").encode()
        temporary = self.directory / f".{name}.tmp"
        temporary.write_bytes(header + content)
        os.replace(temporary, self.directory / f"{name}.eml")
        return "250 Message accepted for delivery"


def serve(directory: Path, host: str, port: int) -> None:
    controller = Controller(FileSink(directory), hostname=host, port=port)
    controller.start()
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    signal.signal(signal.SIGINT, lambda *_: stop.set())
    print(f"SMTP sink on smtp://{host}:{port}, keeping messages in {directory}", flush=True)
    stop.wait()
    controller.stop()


@dataclasses.dataclass
class SmtpSink:
    """The sink as a child process (see `start_smtp_sink`)."""
    url: str
    mail_dir: Path
    process: subprocess.Popen[bytes]

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=5)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()


def start_smtp_sink(mail_dir: Path, *, port: int, log_file: Path | None = None, timeout: float = 20.0,
                    preexec_fn: Any = None) -> SmtpSink:
    """Start the sink on 127.0.0.1:`port` in its own session and return once it accepts connections."""
    if log_file is not None:
        log_file.parent.mkdir(parents=True, exist_ok=True)
    output = open(log_file, "ab") if log_file is not None else subprocess.DEVNULL  # noqa: SIM115 - the child holds it
    try:
        process = subprocess.Popen([sys.executable, "-m", "nexuscart.smtp_sink", "--dir", str(mail_dir),
                                    "--port", str(port)], stdout=output, stderr=subprocess.STDOUT,
                                   start_new_session=True, preexec_fn=preexec_fn)
    finally:
        if log_file is not None:
            output.close()  # type: ignore[union-attr]  # a file when log_file is set
    sink = SmtpSink(url=f"smtp://127.0.0.1:{port}", mail_dir=mail_dir, process=process)
    deadline = time.monotonic() + timeout
    while True:
        if process.poll() is not None:
            raise RuntimeError(f"the SMTP sink exited with code {process.returncode} during start-up")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=1) as probe:
                if probe.recv(3) == b"220":
                    return sink
        except OSError:
            pass
        if time.monotonic() > deadline:
            sink.stop()
            raise RuntimeError(f"the SMTP sink did not answer on port {port} within {timeout}s")
        time.sleep(0.1)  # re-check the port; the loop ends when it answers or at the deadline


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--dir", type=Path, required=True, help="where .eml files are written")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=2525)
    args = parser.parse_args()
    serve(args.dir, args.host, args.port)


if __name__ == "__main__":
    main()
