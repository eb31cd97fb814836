# The `pim` image: the worker (`pim worker`, the default) and every other `pim`
# command (`pim db upgrade`, `pim health`, ...). Build: `docker build -t pim .`
#
# Two stages: the builder installs the package into a virtual environment the
# way the README's Production section does (`pip install .`: no `-e`, no dev
# extra), the runtime stage copies only that environment. No compiler is needed:
# every dependency ships wheels for CPython 3.11 on Linux.

FROM python:3.11-slim AS builder

ENV PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PATH=/opt/venv/bin:$PATH
RUN python -m venv /opt/venv

WORKDIR /src
# pyproject.toml names README.md as the package's readme, so the build needs it.
COPY pyproject.toml README.md ./
COPY pim ./pim
COPY workflows ./workflows
COPY activities ./activities
COPY worker ./worker
RUN pip install .


FROM python:3.11-slim

ENV PATH=/opt/venv/bin:$PATH \
    PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    PIM_LOG_FORMAT=json

# A fixed, non-root uid/gid, so volume permissions and pod security policies can name it.
RUN groupadd --system --gid 10001 pim \
    && useradd --system --uid 10001 --gid pim --home-dir /app --no-create-home --shell /usr/sbin/nologin pim \
    && mkdir /app && chown pim:pim /app

COPY --from=builder /opt/venv /opt/venv

WORKDIR /app
USER pim:pim

# `pim health` exits 0 when Temporal and the store answer, non-zero otherwise.
HEALTHCHECK --interval=30s --timeout=10s --start-period=20s --retries=3 CMD ["pim", "health"]

# Exec form: `pim` is PID 1 and gets SIGTERM itself, so the worker drains
# (running activities get 30 s) before it exits.
ENTRYPOINT ["pim"]
CMD ["worker"]
