"""Pickers: one module each; a picker turns scored candidates into a choice and its propensity."""
