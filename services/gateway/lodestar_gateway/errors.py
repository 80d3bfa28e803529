"""The gateway's own error answers beyond the common ones of :mod:`lodestar.openai_errors`
(same shape; a JSON body or, once a stream has started, one SSE event then ``data: [DONE]``).

Upstream errors are not built here: they are passed through as the instance sent them.
"""

from __future__ import annotations

from http import HTTPStatus

from lodestar.openai_errors import OpenAIError


def no_instance(model: str, why: str) -> OpenAIError:
    return OpenAIError(
        HTTPStatus.SERVICE_UNAVAILABLE, f"No instance can serve model `{model}` now: {why}", "model", "no_instance"
    )
