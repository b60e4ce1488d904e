"""The classic example, end to end (grows as the services land)."""

from arkitekt import easy

app = easy("demo-app", version="0.1.0")
with app:
    print(f"{app!r}: settings url={app.settings.url}, services: {app.fakts!r}")
print(f"{app!r}")
