"""A fault-injecting LM backend: the only fake LM the suite uses (timeouts, garbage)."""

from __future__ import annotations

import itertools
import time

from dspy.lm15 import ServerError, TimeoutError, Usage

from workbench.lm.base import Backend


class FaultBackend(Backend):
    """Cycles through `faults`: 'garbage' (unparseable text), 'timeout', 'error', 'ok:<json>'."""

    def __init__(self, faults: list[str], delay: float = 0.0):
        super().__init__("fault/injector")
        self._faults = itertools.cycle(faults)
        self.delay = delay

    def _generate(self, messages, schema, config):
        fault = next(self._faults)
        if self.delay:
            time.sleep(self.delay)
        if fault == "timeout":
            raise TimeoutError("injected timeout")
        if fault == "error":
            raise ServerError("injected server error")
        text = fault.removeprefix("ok:") if fault.startswith("ok:") else "<<garbage, not JSON at all"
        return text, Usage(input_tokens=10, output_tokens=5), "stop"
