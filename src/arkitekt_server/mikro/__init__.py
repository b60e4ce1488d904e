"""Images on the server (mikro): metadata, upload grants, zarr v3 stores."""

from fastapi import APIRouter

from arkitekt_server.service import ServerService

router = APIRouter(tags=["mikro"])


def _config(base: str) -> dict[str, str]:
    return {"endpoint_url": base + "mikro/", "datalayer": "local"}


service = ServerService(name="mikro", router=router, prefix="/mikro", config=_config)

__all__ = ["service"]
