"""Lodestar: an online-learning request router for LLM inference fleets.

The core library: engine model, simulator, emulator, workloads, routing policies and the
learned predictor. Services (gateway, router, collector, trainer) build on it.
"""

__version__ = "0.1.0"
