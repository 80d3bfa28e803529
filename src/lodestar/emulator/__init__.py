"""The emulated inference engine: vLLM's OpenAI API and ``/metrics`` over the shared engine model.

One process serves a fleet. Per instance: an :class:`~lodestar.engine.engine.Engine` (the same
model the simulator runs), an :class:`~lodestar.emulator.driver.EngineDriver` that drives it in
real time (virtual time = wall time / ``time_scale``), a FastAPI app built by
:func:`~lodestar.emulator.api.build_app`, a uvicorn server on its own port, vLLM-named metrics
in a per-instance registry, and a :class:`~lodestar.emulator.faults.FaultInjector`.
``lodestar emulate`` (``lodestar.cli.emulate_cmd``) builds the object graph.
"""
