"""The engine model shared by the emulator and the simulator: hardware/model profiles, a
roofline step-time model, a paged KV cache with prefix caching, and a vLLM-style scheduler.
Pure computation in virtual time; no I/O, no clocks.
"""
