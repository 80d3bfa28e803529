"""Routing policies: one contract (``contracts``), a registry and YAML profiles that compose
filters, weighted scorers and a picker, and one module per baseline or scorer.
"""
