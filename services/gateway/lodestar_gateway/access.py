"""Who may send requests, how often, and how many streams at once: the gateway's door.

:class:`Access` joins the configured API keys (:mod:`lodestar_gateway.auth`) with each
client's limits (:mod:`lodestar_gateway.ratelimit`). Per request, in this order:

1. :meth:`Access.admit` before the body is read: 401 without a configured key (when keys are
   configured), then 429 with ``Retry-After`` when the client's token bucket is empty.
   Without keys every request is the one client ``anonymous``: the limits hold for the
   gateway as a whole.
2. :meth:`Access.open_stream` for a client stream, once the body is valid: 429 when the
   client already has ``max_streams_per_key`` streams open; else a release function to call
   exactly once when the stream ends.

Error messages name the limit, never the key. Event-loop only.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from http import HTTPStatus

from lodestar.openai_errors import OpenAIError
from lodestar_gateway.auth import KeyTable, presented_key
from lodestar_gateway.ratelimit import ClientTable, Limits, retry_after_header
from lodestar_gateway.settings import GatewaySettings


class RateLimited(OpenAIError):
    """429 with the seconds after which a retry can succeed (``Retry-After``)."""

    def __init__(self, message: str, retry_after_s: float, error_class: str) -> None:
        super().__init__(HTTPStatus.TOO_MANY_REQUESTS, message, None, error_class)
        self.retry_after_s = retry_after_s

    @property
    def headers(self) -> dict[str, str]:
        return {"retry-after": retry_after_header(self.retry_after_s)}


def unauthorized() -> OpenAIError:
    return OpenAIError(
        HTTPStatus.UNAUTHORIZED,
        "Missing or invalid API key (send 'Authorization: Bearer <key>').",
        None,
        "invalid_api_key",
    )


class Access:
    """The key table and every client's limits (built once per process)."""

    def __init__(self, keys: KeyTable, clients: ClientTable, clock: Callable[[], float] = time.monotonic) -> None:
        self.keys = keys
        self.clients = clients
        self._clock = clock

    @classmethod
    def from_settings(cls, settings: GatewaySettings, clock: Callable[[], float] = time.monotonic) -> Access:
        """KeyConfigError for unusable key lines, ValueError for limits of unknown keys."""
        inline = settings.api_keys.get_secret_value() if settings.api_keys is not None else None
        keys = KeyTable.load(inline, settings.api_keys_file)
        default = Limits(settings.rate_limit_rps, settings.rate_limit_burst, settings.max_streams_per_key)
        overrides = {name: Limits(k.rate_rps, k.burst, k.max_streams) for name, k in settings.key_limits.items()}
        return cls(keys, ClientTable(keys.names, default, overrides, clock()), clock)

    @property
    def keys_required(self) -> bool:
        return len(self.keys) > 0

    def admit(self, authorization: str | None, api_key: str | None) -> str:
        """The client's name; OpenAIError 401 (unknown key) or RateLimited (bucket empty)."""
        if self.keys_required:
            name = self.keys.identify(presented_key(authorization, api_key))
            if name is None:
                raise unauthorized()
        else:
            name = next(iter(self.clients.clients))
        client = self.clients[name]
        wait_s = client.admit(self._clock())
        if wait_s > 0.0:
            assert client.bucket is not None
            raise RateLimited(
                f"Rate limit exceeded: at most {client.bucket.rate_rps:g} requests per second "
                f"(bursts of {client.bucket.burst}); retry in {wait_s:.2f} s.",
                wait_s,
                "rate_limited",
            )
        return name

    def open_stream(self, name: str) -> Callable[[], None]:
        """A slot for one stream of client ``name`` and its release (call it once);
        RateLimited when the client's streams are all in use."""
        slots = self.clients[name].streams
        if not slots.acquire():
            raise RateLimited(
                f"Too many concurrent streams: at most {slots.limit} per API key.", 1.0, "too_many_streams"
            )
        released = False

        def release() -> None:
            nonlocal released
            if not released:
                released = True
                slots.release()

        return release
