"""Fault admin routes: ``GET|POST|DELETE /admin/fault`` on every instance.

``POST`` takes one fault (see :mod:`lodestar.emulator.faults`), e.g.
``{"kind": "slowdown", "factor": 4}``, ``{"kind": "stall", "duration_s": 2}``,
``{"kind": "fail", "fraction": 0.5}``, ``{"kind": "drop", "fraction": 1}``,
``{"kind": "go_away", "duration_s": 3}``, ``{"kind": "restore"}``, and answers the
:class:`FaultStatus` in force; ``DELETE`` restores; ``GET`` reports. Invalid bodies get 400 with
an OpenAI error body naming the field. These routes are not part of vLLM's API.
"""

from __future__ import annotations

from collections.abc import Callable

from fastapi import APIRouter, Request
from pydantic import TypeAdapter, ValidationError

from lodestar.emulator.faults import FaultInjector, FaultSpec, FaultStatus
from lodestar.openai_errors import bad_request, invalid_body

_FAULT: TypeAdapter[FaultSpec] = TypeAdapter(FaultSpec)


async def parse_fault(request: Request) -> FaultSpec:
    try:
        data = await request.json()
    except ValueError:
        raise bad_request("fault body is not valid JSON") from None
    try:
        return _FAULT.validate_python(data)
    except ValidationError as exc:
        raise invalid_body(exc.errors()) from None


def admin_router(faults: Callable[[], FaultInjector]) -> APIRouter:
    router = APIRouter(prefix="/admin", tags=["admin"])

    @router.get("/fault")
    async def get_fault() -> FaultStatus:
        return faults().status()

    @router.post("/fault")
    async def post_fault(request: Request) -> FaultStatus:
        return faults().apply(await parse_fault(request))

    @router.delete("/fault")
    async def delete_fault() -> FaultStatus:
        faults().restore()
        return faults().status()

    return router
