"""Workloads: one request-stream type, trace loaders, synthetic generators, drift schedules.

Modules (no re-exports; import from the module that does the job):

- ``request``: :class:`Prompt`, :class:`RequestSpec` (the request stream type).
- ``workload``: :class:`Workload` (requests + instance faults + metadata); ``faults``:
  :class:`InstanceFault`.
- ``traces/``: file readers (Mooncake, Azure 2023, Vidur splitwise, length statistics,
  ServeGen, Lodestar export jsonl); ``errors``: :class:`TraceFormatError`, :class:`SpecError`.
- ``lengths``: length distributions; ``arrivals``: Poisson/Gamma processes; ``generator``:
  tenants, sessions, long-context content; ``windowed``: ServeGen clients as streams;
  ``segments``: fresh segment ids.
- ``drift``: rate ramps, day/night warps, mix shifts; ``transform``: speedup, target rate,
  slicing; ``summary``: :func:`summarize`.
- ``spec`` (pydantic :class:`WorkloadSpec`), ``catalog`` (shorthand names,
  ``LODESTAR_TRACES_DIR``), ``resolve`` (CLI targets), ``build`` (:func:`build_workload`).
"""
