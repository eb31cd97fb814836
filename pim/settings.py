"""Settings from the environment (PIM_*)."""

from __future__ import annotations

from typing import Literal

from pydantic_settings import BaseSettings, SettingsConfigDict


class PimSettings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="PIM_", extra="ignore")

    temporal_address: str = "localhost:7233"
    namespace: str = "default"
    task_queue: str = "pim"
    database_url: str = "sqlite+aiosqlite:///./.pim/pim.db"
    log_format: Literal["console", "json"] = "console"
    log_level: str = "INFO"
    directory: Literal["store"] = "store"
    max_role_assignable_groups: int = 500


def load_settings() -> PimSettings:
    return PimSettings()
