"""The fleet's control port (optional, ``--admin-port``): faults for any instance, reachable
even while that instance has gone away.

``GET /admin/instances``; ``GET|POST|DELETE /admin/instances/{instance_id}/fault`` with the
same bodies and answers as an instance's own ``/admin/fault``; ``GET /health``.
"""

from __future__ import annotations

from collections.abc import Mapping
from http import HTTPStatus
from typing import TYPE_CHECKING

from fastapi import FastAPI, Request, Response
from pydantic import BaseModel

from lodestar.emulator.admin import parse_fault
from lodestar.emulator.faults import FaultStatus
from lodestar.openai_errors import OpenAIError, install_error_handlers

if TYPE_CHECKING:
    from lodestar.emulator.instance import EmulatedInstance


class InstanceInfo(BaseModel):
    instance_id: str
    url: str
    hardware: str
    model: str
    tp: int
    max_model_len: int
    faults: FaultStatus


def build_control_app(instances: Mapping[str, EmulatedInstance]) -> FastAPI:
    app = FastAPI(title="Lodestar emulated fleet · control")
    install_error_handlers(app)

    def find(instance_id: str) -> EmulatedInstance:
        try:
            return instances[instance_id]
        except KeyError:
            known = ", ".join(instances)
            raise OpenAIError(
                HTTPStatus.NOT_FOUND, f"unknown instance {instance_id!r}; known: {known}", "instance_id"
            ) from None

    @app.get("/health")
    async def health() -> Response:
        return Response(status_code=200)

    @app.get("/admin/instances")
    async def list_instances() -> list[InstanceInfo]:
        return [
            InstanceInfo(
                instance_id=i.instance_id,
                url=i.url,
                hardware=i.spec.hardware_name,
                model=i.model_name,
                tp=i.spec.profile.tp,
                max_model_len=i.max_model_len,
                faults=i.faults.status(),
            )
            for i in instances.values()
        ]

    @app.get("/admin/instances/{instance_id}/fault")
    async def get_fault(instance_id: str) -> FaultStatus:
        return find(instance_id).faults.status()

    @app.post("/admin/instances/{instance_id}/fault")
    async def post_fault(instance_id: str, request: Request) -> FaultStatus:
        instance = find(instance_id)
        return instance.faults.apply(await parse_fault(request))

    @app.delete("/admin/instances/{instance_id}/fault")
    async def delete_fault(instance_id: str) -> FaultStatus:
        instance = find(instance_id)
        instance.faults.restore()
        return instance.faults.status()

    return app
