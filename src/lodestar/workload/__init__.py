"""Workloads: one request-stream type, trace loaders, synthetic generators, drift schedules."""
