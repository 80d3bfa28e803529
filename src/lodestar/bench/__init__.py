"""``lodestar bench``: an open-loop, streaming load generator for OpenAI-compatible servers.

- ``prepare``: which requests (a workload reshaped like ``lodestar sim`` does);
- ``schedule``: when and where each is sent (time scale, round-robin over base URLs, send lag);
- ``payload``: the HTTP body and headers; ``sse``: parsing a stream into TTFT/TPOT/E2E;
- ``client``: the sender (one :class:`~lodestar.http_client.HttpClient`); ``results``: records, summary, JSON;
- ``report`` / ``plots`` / ``progress``: what a person sees.
"""
