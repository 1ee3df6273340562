"""`python -m workbench.lm.check`: can this machine run the embedded LM?

Loads the embedded model and decodes a constrained label in a child process, so a native
crash (a llama.cpp build using CPU instructions the machine or VM does not allow) becomes
one clear line and exit code 1 instead of a segfault in the middle of a run.
"""

from __future__ import annotations

import subprocess
import sys
import time

_CHILD = """
from workbench.lm.embedded import EmbeddedBackend
backend = EmbeddedBackend()
grammar = backend.grammar_for({"type": "object", "properties": {"label": {"enum": ["yes", "no"]}},
                               "required": ["label"]})
out = backend.llama.create_chat_completion(messages=[{"role": "user", "content": "Is the sky blue?"}],
                                           grammar=grammar, max_tokens=16, temperature=0.0)
print(out["choices"][0]["message"]["content"])
"""


def main() -> int:
    start = time.perf_counter()
    proc = subprocess.run([sys.executable, "-c", _CHILD], capture_output=True, text=True, timeout=300)
    if proc.returncode != 0:
        last = (proc.stderr.strip().splitlines() or [f"exit status {proc.returncode}"])[-1]
        print(f"error: the embedded LM does not run on this machine (exit {proc.returncode}: {last}); "
              "rebuild llama-cpp-python for this CPU: make clean-llama setup", file=sys.stderr)
        return 1
    print(f"embedded LM ok: answered {proc.stdout.strip()} in {time.perf_counter() - start:.1f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
