"""structlog set-up: readable in development, JSON in production (PIM_LOG_FORMAT=json)."""

from __future__ import annotations

import logging
import re
import sys
from typing import IO, Any

import structlog
from structlog.typing import EventDict, Processor

# A field is masked when a word of its name is one of these (mfa_code, access_token,
# client_secret, smtp_password, Authorization, apiKey), in nested dicts and lists too.
SECRET_WORDS = frozenset({"code", "mfa", "otp", "secret", "token", "password", "passwd", "authorization", "apikey", "cookie"})
NOT_SECRET = frozenset({"status_code", "exit_code"})  # "code" words that are no credential
MASK = "***"


def is_secret_key(key: Any) -> bool:
    name = re.sub(r"([a-z0-9])([A-Z])", r"\1_\2", str(key)).lower()
    if name in NOT_SECRET:
        return False
    words = [word for word in re.split(r"[^a-z0-9]+", name) if word]
    return any(word in SECRET_WORDS for word in words) or "api_key" in "_".join(words)


def _mask(value: Any, depth: int = 0) -> Any:
    if depth > 5:  # deeper than anything we log: drop rather than walk it
        return MASK
    if isinstance(value, dict):
        return {k: MASK if is_secret_key(k) else _mask(v, depth + 1) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_mask(v, depth + 1) for v in value]
    return value


def _redact_secrets(_logger: Any, _method: str, event_dict: EventDict) -> EventDict:
    """A last line of defence: fields that carry secrets never reach the output,
    whoever logged them (our code, the SDK's loggers, a library's `extra`)."""
    for key in list(event_dict):
        if key == "event":
            continue
        event_dict[key] = MASK if is_secret_key(key) else _mask(event_dict[key])
    return event_dict


def configure_logging(fmt: str = "console", level: str = "INFO", stream: IO[str] | None = None) -> None:
    renderer = structlog.processors.JSONRenderer() if fmt == "json" else structlog.dev.ConsoleRenderer(colors=sys.stderr.isatty())
    shared: list[Processor] = [
        structlog.contextvars.merge_contextvars,
        structlog.stdlib.add_log_level,
        structlog.processors.TimeStamper(fmt="iso", utc=True),
        _redact_secrets,
    ]
    structlog.configure(
        processors=[*shared, structlog.stdlib.ProcessorFormatter.wrap_for_formatter],
        logger_factory=structlog.stdlib.LoggerFactory(),
        wrapper_class=structlog.stdlib.BoundLogger,
        cache_logger_on_first_use=True,
    )
    # The standard library's records (Temporal's workflow.logger, alembic) go through the same renderer.
    handler = logging.StreamHandler(stream or sys.stderr)
    foreign: list[Processor] = [*shared[:-1], structlog.stdlib.ExtraAdder(), _flatten_temporal_info, _redact_secrets]
    handler.setFormatter(
        structlog.stdlib.ProcessorFormatter(
            foreign_pre_chain=foreign, processors=[structlog.stdlib.ProcessorFormatter.remove_processors_meta, renderer]
        )
    )
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
    logging.getLogger("alembic").setLevel(logging.WARNING)
    # Workflow and activity context goes into fields, not into the message text.
    from temporalio import activity, workflow

    workflow.logger.workflow_info_on_message = False
    activity.logger.activity_info_on_message = False


def _flatten_temporal_info(_logger: Any, _method: str, event_dict: EventDict) -> EventDict:
    for key in ("temporal_workflow", "temporal_activity"):
        info = event_dict.pop(key, None)
        if isinstance(info, dict):
            event_dict.setdefault("workflow_id", info.get("workflow_id"))
            event_dict.setdefault("run_id", info.get("run_id") or info.get("workflow_run_id"))
            event_dict.setdefault("workflow_type", info.get("workflow_type"))
            if key == "temporal_activity":
                event_dict.setdefault("activity", info.get("activity_type"))
                event_dict.setdefault("attempt", info.get("attempt"))
    return event_dict


def get_logger(name: str | None = None) -> structlog.stdlib.BoundLogger:
    return structlog.get_logger(name)
