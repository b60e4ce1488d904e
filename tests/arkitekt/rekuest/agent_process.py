"""An agent in its own process, for the tests: ``python agent_process.py`` with the app's
identifier in ``AGENT_IDENTIFIER`` and the server in ``FAKTS_URL``. Serves until SIGINT.

``p_slow`` writes its pid to ``marker`` once it runs, then sleeps (unless ``AGENT_FAST`` is set).
"""

from __future__ import annotations

import os
import time
from pathlib import Path

from arkitekt import easy
from arkitekt.rekuest import progress, register


@register
def p_double(x: int) -> int:
    """Double a number."""
    return 2 * x


@register
def p_slow(seconds: float, marker: str) -> str:
    """Run for a while."""
    with Path(marker).open("a") as file:
        file.write(f"{os.getpid()}\n")
    progress(10, "started")
    if not os.environ.get("AGENT_FAST"):
        time.sleep(seconds)
    return f"finished by {os.getpid()}"


app = easy(os.environ["AGENT_IDENTIFIER"])
with app:
    app.run()  # the same as app.rekuest.run()
print("agent stopped cleanly", flush=True)
