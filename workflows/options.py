"""Timeouts and retry policies of the activities workflows call, one per kind of
step, as typed activity configurations."""

from datetime import timedelta

from temporalio.common import RetryPolicy
from temporalio.workflow import ActivityConfig, LocalActivityConfig

# Admission reads the store and uses an MFA code: a few quick retries, then the request fails closed.
ADMIT = LocalActivityConfig(
    start_to_close_timeout=timedelta(seconds=30),
    retry_policy=RetryPolicy(initial_interval=timedelta(seconds=1), maximum_interval=timedelta(seconds=10), maximum_attempts=6),
)
# A grant that cannot be written in about ten minutes fails the activation (and is cleaned up).
_GRANT_RETRY = RetryPolicy(initial_interval=timedelta(seconds=1), maximum_interval=timedelta(minutes=1), maximum_attempts=15)
GRANT = ActivityConfig(start_to_close_timeout=timedelta(seconds=30), retry_policy=_GRANT_RETRY)
# The same grant, as a local activity where it only writes to the store (the built-in
# directory): it runs in the workflow task that decides it, without a trip through the server.
GRANT_LOCALLY = LocalActivityConfig(start_to_close_timeout=timedelta(seconds=30), retry_policy=_GRANT_RETRY)
# Revocation is retried until it succeeds: no attempt limit, nothing is non-retryable.
REVOKE = ActivityConfig(
    start_to_close_timeout=timedelta(seconds=30),
    retry_policy=RetryPolicy(
        initial_interval=timedelta(seconds=1),
        backoff_coefficient=2.0,
        maximum_interval=timedelta(minutes=1),
        maximum_attempts=0,
    ),
)
# Audit and notifications: retried for a while; a failure never blocks access decisions.
RECORD = ActivityConfig(
    start_to_close_timeout=timedelta(seconds=30),
    retry_policy=RetryPolicy(initial_interval=timedelta(seconds=1), maximum_interval=timedelta(minutes=1), maximum_attempts=10),
)
# The reconciler's sweep: one run at a time, a few retries; the next tick tries again.
RECONCILE = ActivityConfig(
    start_to_close_timeout=timedelta(minutes=4),
    retry_policy=RetryPolicy(initial_interval=timedelta(seconds=5), maximum_interval=timedelta(minutes=1), maximum_attempts=5),
)
# Checking a proof or an eligibility: store reads, a few quick retries; a failure refuses.
VERIFY = LocalActivityConfig(
    start_to_close_timeout=timedelta(seconds=10),
    retry_policy=RetryPolicy(
        initial_interval=timedelta(milliseconds=500), maximum_interval=timedelta(seconds=5), maximum_attempts=5
    ),
)
CHECK = VERIFY
