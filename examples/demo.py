"""``make demo``: an embedded server on a free loopback port, the examples against it, stop.

The server auto-approves apps on this machine (single-user demo). The examples get the server's
URL from the environment (``FAKTS_URL``), never from their code, and cache their approval in a
temporary directory.
"""

from __future__ import annotations

import contextlib
import os
import subprocess
import sys
import tempfile
import threading
from pathlib import Path

from arkitekt_server import EmbeddedServer, ServerSettings

HERE = Path(__file__).resolve().parent
EXAMPLES = ["classic.py", "rekuest_demo.py"]


def main(argv: list[str]) -> int:
    keep = "--keep" in argv
    with tempfile.TemporaryDirectory(prefix="arkitekt-demo-") as tmp:
        settings = ServerSettings(
            port=0, data_dir=Path(tmp) / "server", auto_approve=True, log_level="warning"
        )
        with EmbeddedServer(settings) as server:
            print(f"== embedded arkitekt server at {server.url} (data in {settings.data_dir})")
            env = {
                **os.environ,
                "FAKTS_URL": server.url,
                "ARKITEKT_HEADLESS": "true",
                "ARKITEKT_CACHE_DIR": str(Path(tmp) / "cache"),
            }
            for name in EXAMPLES:
                script = HERE / name
                if not script.exists():
                    continue
                print(f"== python examples/{name}", flush=True)
                done = subprocess.run([sys.executable, str(script)], env=env, timeout=600)
                if done.returncode != 0:
                    print(f"== examples/{name} failed with exit code {done.returncode}")
                    return done.returncode
            if keep:
                print(f"== images are listed at {server.url}/mikro/ ; Ctrl+C stops the server")
                with contextlib.suppress(KeyboardInterrupt):
                    threading.Event().wait()
            else:
                print(
                    f"== images were listed at {server.url}/mikro/ ; to browse them, run "
                    "`python examples/demo.py --keep` (serves until Ctrl+C)"
                )
        print("== server stopped")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
