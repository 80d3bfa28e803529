"""Error answers in ASCII JSON, for every HTTP service of the project (FastAPI's own
``JSONResponse`` writes raw UTF-8)."""

from __future__ import annotations

import json
from typing import Any

from starlette.responses import JSONResponse


class AsciiJSONResponse(JSONResponse):
    """JSON with every non-ASCII character escaped. An error may quote the client's input, and
    a string decoded from a lone surrogate escape (``"\\ud800"``) has no UTF-8 form, so
    ``JSONResponse`` failed on it with a 500."""

    def render(self, content: Any) -> bytes:
        return json.dumps(content, separators=(",", ":")).encode()
