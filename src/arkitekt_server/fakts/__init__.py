"""The fakts v1 service: discovery, device-code approval, claims, static tokens."""
