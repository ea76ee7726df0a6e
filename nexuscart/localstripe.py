"""localstripe (a stateful fake Stripe server, from PyPI) as a child process: the Stripe of the tests, and of
`make run` when no STRIPE_API_KEY is set, so the `stripe` provider can be tried with test cards out of the box.

What it does and does not do (read from its source, 1.15): PaymentIntents, PaymentMethods (`pm_card_visa`,
`pm_card_chargeCustomerFail` declines with 402 `card_declined`, cards such as 4000002500003155 need 3-D Secure,
completed with its own `POST /v1/payment_intents/{id}/_authenticate`), refunds, events. It sends signed
webhooks to endpoints registered with `POST /_config/webhooks/{id}`, about 1 s after the action, without
retries, and only `payment_intent.succeeded` / `payment_intent.payment_failed` among the payment events. It
ignores `Idempotency-Key` and allows over-refunds: NexusCart guards both itself. It always starts empty here
(`--from-scratch`; it would otherwise reload /tmp/localstripe.pickle, which every instance on the machine writes).
"""
from __future__ import annotations

import dataclasses
import subprocess
import sys
import time
from pathlib import Path

import httpx

from kernel.process import child_preexec
from nexuscart.infra import free_port

# Any `sk_test_...` key is accepted by localstripe; real keys never go there.
API_KEY = "sk_test_localstripe"


@dataclasses.dataclass
class LocalStripe:
    url: str
    process: subprocess.Popen[bytes]
    api_key: str = API_KEY

    def register_webhook(self, endpoint_url: str, secret: str, name: str = "nexuscart") -> None:
        """localstripe signs every event it sends to `endpoint_url` with `secret` (Stripe's scheme)."""
        response = httpx.post(f"{self.url}/_config/webhooks/{name}", data={"url": endpoint_url, "secret": secret},
                              timeout=10)
        response.raise_for_status()

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=5)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()


def start_localstripe(*, port: int | None = None, log_file: Path | None = None,
                      timeout: float = 30.0) -> LocalStripe:
    """Start localstripe on `port` (a free one by default), from scratch, and return once it answers API
    calls. Raises RuntimeError when it exits or does not answer within `timeout` seconds."""
    port = port or free_port()
    if log_file is not None:
        log_file.parent.mkdir(parents=True, exist_ok=True)
    output = open(log_file, "ab") if log_file is not None else subprocess.DEVNULL  # noqa: SIM115 - the child holds it
    try:
        # Own session and a death signal, like every child of the launcher: Ctrl-C reaches the launcher only,
        # and localstripe ends with whoever started it.
        process = subprocess.Popen([sys.executable, "-m", "localstripe", "--port", str(port), "--from-scratch"],
                                   stdout=output, stderr=subprocess.STDOUT, start_new_session=True,
                                   preexec_fn=child_preexec())
    finally:
        if log_file is not None:
            output.close()  # type: ignore[union-attr]  # a file when log_file is set
    server = LocalStripe(url=f"http://127.0.0.1:{port}", process=process)
    deadline = time.monotonic() + timeout
    while True:
        if process.poll() is not None:
            raise RuntimeError(f"localstripe exited with code {process.returncode} during start-up")
        try:
            if httpx.get(f"{server.url}/v1/customers", auth=(API_KEY, ""), timeout=2).status_code == 200:
                return server
        except httpx.HTTPError:
            pass
        if time.monotonic() > deadline:
            server.stop()
            raise RuntimeError(f"localstripe did not answer on {server.url} within {timeout}s")
        time.sleep(0.1)  # re-check the API; the loop ends when it answers or at the deadline
