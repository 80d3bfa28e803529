"""Error bodies in ASCII JSON (FastAPI's own ``JSONResponse`` writes raw UTF-8): the OpenAI error
bodies of :mod:`lodestar.openai_errors` and the history service's validation errors."""

from __future__ import annotations

import json
from typing import Any

from starlette.responses import JSONResponse


def ascii_json(content: Any) -> bytes:
    """Compact JSON with every non-ASCII character escaped. An error may quote the client's
    input, and a string decoded from a lone surrogate escape (``"\\ud800"``) has no UTF-8 form,
    so UTF-8 JSON fails on it."""
    return json.dumps(content, separators=(",", ":")).encode()


class AsciiJSONResponse(JSONResponse):
    """A response whose body is :func:`ascii_json` (``JSONResponse`` failed with a 500 on a
    lone surrogate)."""

    def render(self, content: Any) -> bytes:
        return ascii_json(content)
