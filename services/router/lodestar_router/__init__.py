"""The router: answers the gateway's ``POST /v1/route`` with the instance the policy picks,
learns from ``POST /v1/feedback``, follows instance states and published models on Kafka.

Pure parts: ``mapping`` (HTTP contract ↔ policy contract ↔ decision event), ``instances``
(fleet view and freshness rules), ``model_updates`` (model validation and store), ``errors``.
The core: ``dispatch`` (decisions, feedback, swaps; event loop only). I/O parts: ``feeds``
(the two consumers), ``api`` and ``admin`` (HTTP), ``metrics``, ``service`` (wiring).
"""
