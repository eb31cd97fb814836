"""structlog set-up: readable in development, JSON in production (PIM_LOG_FORMAT=json)."""

from __future__ import annotations

import logging
import sys

import structlog

SECRET_KEYS = frozenset({"code", "mfa", "secret", "token", "password"})


def _redact_secrets(_logger, _method, event_dict):
    """A last line of defence: fields that carry secrets never reach the output."""
    for key in list(event_dict):
        if key in SECRET_KEYS:
            event_dict[key] = "***"
    return event_dict


def configure_logging(fmt: str = "console", level: str = "INFO") -> None:
    renderer = structlog.processors.JSONRenderer() if fmt == "json" else structlog.dev.ConsoleRenderer(colors=sys.stderr.isatty())
    shared = [
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
    handler = logging.StreamHandler(sys.stderr)
    foreign = [*shared[:-1], structlog.stdlib.ExtraAdder(), _flatten_temporal_info, _redact_secrets]
    handler.setFormatter(structlog.stdlib.ProcessorFormatter(foreign_pre_chain=foreign, processors=[
        structlog.stdlib.ProcessorFormatter.remove_processors_meta, renderer]))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
    logging.getLogger("alembic").setLevel(logging.WARNING)
    # Workflow and activity context goes into fields, not into the message text.
    from temporalio import activity, workflow

    workflow.logger.workflow_info_on_message = False
    activity.logger.activity_info_on_message = False


def _flatten_temporal_info(_logger, _method, event_dict):
    for key in ("temporal_workflow", "temporal_activity"):
        info = event_dict.pop(key, None)
        if isinstance(info, dict):
            event_dict.setdefault("workflow_id", info.get("workflow_id"))
            if key == "temporal_activity":
                event_dict.setdefault("activity", info.get("activity_type"))
    return event_dict


def get_logger(name: str | None = None):
    return structlog.get_logger(name)
