"""Activity options and search attribute keys shared by workflows."""

from datetime import timedelta

from temporalio.common import RetryPolicy, SearchAttributeKey

PIM_STATE = SearchAttributeKey.for_keyword("PimState")
PIM_GROUP_ID = SearchAttributeKey.for_keyword("PimGroupId")
PIM_ACCESS = SearchAttributeKey.for_keyword("PimAccess")
PIM_PRINCIPAL_ID = SearchAttributeKey.for_keyword("PimPrincipalId")
SEARCH_ATTRIBUTES = (PIM_STATE, PIM_GROUP_ID, PIM_ACCESS, PIM_PRINCIPAL_ID)

# Admission reads the store and uses an MFA code: a few quick retries, then the request fails closed.
ADMIT = dict(
    start_to_close_timeout=timedelta(seconds=30),
    retry_policy=RetryPolicy(initial_interval=timedelta(seconds=1), maximum_interval=timedelta(seconds=10), maximum_attempts=6),
)
# A grant that cannot be written in about ten minutes fails the activation (and is cleaned up).
GRANT = dict(
    start_to_close_timeout=timedelta(seconds=30),
    retry_policy=RetryPolicy(initial_interval=timedelta(seconds=1), maximum_interval=timedelta(minutes=1), maximum_attempts=15),
)
# Revocation is retried until it succeeds: no attempt limit, nothing is non-retryable.
REVOKE = dict(
    start_to_close_timeout=timedelta(seconds=30),
    retry_policy=RetryPolicy(
        initial_interval=timedelta(seconds=1), backoff_coefficient=2.0, maximum_interval=timedelta(minutes=1), maximum_attempts=0
    ),
)
# Audit and notifications: retried for a while; a failure never blocks access decisions.
RECORD = dict(
    start_to_close_timeout=timedelta(seconds=30),
    retry_policy=RetryPolicy(initial_interval=timedelta(seconds=1), maximum_interval=timedelta(minutes=1), maximum_attempts=10),
)
