"""Peer routers as managed local processes: ``sglang-router`` and ``vllm-router`` (PyPI wheels
with Rust binaries), each pinned and installed into its own venv under ``.lodestar/peers/``,
launched in front of a list of worker URLs with a chosen policy, for benchmarks and the live
parity test. See :mod:`lodestar.peers.catalog` for what each wheel offers and needs.
"""
