"""arkitekt server."""
