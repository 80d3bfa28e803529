"""Discrete-event simulator: the engine model in virtual time, many instances, one routing
policy through the same contract the live router uses."""
