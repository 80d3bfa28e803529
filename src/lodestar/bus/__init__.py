"""Kafka plumbing shared by every service: settings, topic admin, typed publish and consume."""
