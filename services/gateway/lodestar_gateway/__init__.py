"""The gateway: an OpenAI-compatible proxy in front of the fleet. It asks the router where to
send each request (falling back to a local policy when the router is late or down), forwards
it, measures TTFT / TPOT / end-to-end latency, reports feedback to the router and publishes
one ``RequestOutcome`` per request. No prompt or completion text leaves it.

Pure parts: ``protocol`` and ``inputs`` (request checks, token counts, block hashes), ``sse``
(stream scanning), ``outcomes`` (measurements → events and feedback), ``errors``, ``fleet``
(the local fleet view). I/O parts: ``http_client`` (keep-alive HTTP/1.1 on httptools, for the
router and the instances), ``routing`` (router client and fallback), ``exchange`` (one proxied request),
``relay`` (its answer to the client), ``feedback``, ``feed``, ``metrics``, ``api``,
``service`` (wiring).
"""
