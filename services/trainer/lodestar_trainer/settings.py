"""Trainer settings (env prefix ``LODESTAR_TRAINER_``)."""

from __future__ import annotations

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict


class TrainerSettings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="LODESTAR_TRAINER_", extra="ignore")

    host: str = "127.0.0.1"
    port: int = Field(default=8094, ge=0, le=65535)
    group_id: str = "lodestar-trainer"
    publish_interval_s: float = Field(default=5.0, gt=0.0, description="how often a new model version is published")
    steps_per_publish: int = Field(default=25, ge=1, description="Adam steps between two publications")
    join_window_s: float = Field(default=600.0, gt=0.0, description="how long a decision waits for its outcome")
    max_pending: int = Field(default=200_000, ge=100, description="bound on unjoined decisions/outcomes kept")
    seed: int = 0
    resume_idle_s: float = Field(default=1.0, gt=0.0, description="model topic read ends after this long idle")
    poll_interval_s: float = Field(
        default=0.5,
        ge=0.0,
        le=60.0,
        description="pause between reads of the decision and outcome topics: fewer, larger fetches (0: read on "
        "every arrival)",
    )
    log_level: str = "INFO"
    json_logs: bool = True
