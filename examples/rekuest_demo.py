"""Functions across apps: one app serves ``threshold``, another calls it.

``make demo`` runs this against an embedded server (``FAKTS_URL``). It starts
``rekuest_agent.py`` as a separate process (the serving app), then, as a second app, stores an
image, calls ``threshold`` on it remotely (the agent fetches the image by id, stores a mask in
its worker thread, and the mask comes back as an ``Image``), iterates over a remote stream, and
finally stops the agent with Ctrl+C (SIGINT).
"""

from __future__ import annotations

import signal
import subprocess
import sys
from pathlib import Path

import numpy as np
import xarray as xr

from arkitekt import easy
from arkitekt.mikro import Image, from_xarray
from arkitekt.rekuest import CallEvent, call, iterate

AGENT = Path(__file__).with_name("rekuest_agent.py")

agent = subprocess.Popen([sys.executable, str(AGENT)])  # same environment, same server
try:
    app = easy("rekuest-demo-caller")
    with app:
        data = np.random.default_rng(1).random((64, 64)).astype(np.float32)
        image = from_xarray(xr.DataArray(data, dims=["y", "x"]), name="noise")

        def show(event: CallEvent) -> None:
            percent = f"{event.progress}% " if event.progress is not None else ""
            print(f"  [{event.kind}] {percent}{event.message or ''}")

        # `wait`: the agent process may still be starting; wait up to 60 s for it.
        mask = call("threshold", image=image, level=0.3, wait=60, on_event=show)
        assert isinstance(mask, Image)
        stored = mask.data.values.squeeze()
        assert (stored == (data > 0.3)).all(), "the mask is wrong"
        print(f"threshold ran remotely: {mask.name!r} (id={mask.id}), {int(stored.sum())} ones")

        print("countdown:", " ".join(str(value) for value in iterate("countdown", start=5)))
finally:
    agent.send_signal(signal.SIGINT)  # Ctrl+C: the agent shuts down cleanly
    code = agent.wait(timeout=30)
print(f"agent exited with code {code}")
sys.exit(code)
