"""``lodestar bench compare``: real peer routers and Lodestar, live, on the same emulated fleet.

For each fleet (``hetero-mix8``, ``homo-h100x8``, time-scaled so this machine keeps up), every
router under test gets a freshly started emulator (cold KV cache: no run inherits another's
cache), is started in front of it, and is sent the same workload file with ``lodestar bench
run`` (the real CLI, as a subprocess). Routers: vllm-router and sglang-router (PyPI wheels,
:mod:`lodestar.peers`) with each relevant policy; Lodestar cold (a fresh ``lodestar up`` stack:
broker, emulator, collector, router, trainer, gateway) and Lodestar warmed (a fresh stack that
first replays a *different* slice of the trace, then keeps its router and trainer while the
emulator is restarted); optionally Lodestar's router with other profiles. One table per fleet
(TTFT mean/P50/P99, TPOT, throughput, errors), the ratios the issue's targets need, JSON and a
TTFT CDF plot.

Modules: :mod:`.plan` (what runs), :mod:`.workload` (the slices), :mod:`.emulator` (the fleet
process and whether it kept up), :mod:`.routers` (starting each router), :mod:`.runner` (one
fleet, case by case), :mod:`.summary` (table, ratios, JSON), :mod:`.cli` (the command).
"""
