"""Lodestar's Kafka event contracts: one frozen pydantic model per topic.

``events`` declares the models, ``topics`` maps topic names to models, keys and retention,
``codec`` turns bytes into events (and fails with one clear error type).
"""

from lodestar_schemas.codec import EventDecodeError, decode_event, encode_event
from lodestar_schemas.events import (
    CandidateRecord,
    DeadLetter,
    Event,
    InstanceState,
    ModelUpdate,
    RequestOutcome,
    RouteDecision,
)
from lodestar_schemas.topics import TOPICS, TopicName, TopicSpec, topic_spec

__all__ = [
    "TOPICS",
    "CandidateRecord",
    "DeadLetter",
    "Event",
    "EventDecodeError",
    "InstanceState",
    "ModelUpdate",
    "RequestOutcome",
    "RouteDecision",
    "TopicName",
    "TopicSpec",
    "decode_event",
    "encode_event",
    "topic_spec",
]
