from datetime import UTC, datetime, timedelta
from tests.workflows.test_activation_rules import *
async def test_clock(time_env, demo):
    async with worker(time_env, demo) as pim:
        print("server", await time_env.get_current_time())
        missing = await outcome(time_env, pim, req("grp-ops", "alice"))
        print("server", await time_env.get_current_time(), missing.requested_at, missing.ended_at, codes(missing))
        missing = await outcome(time_env, pim, req("grp-ops", "alice"))
        print("server", await time_env.get_current_time(), missing.requested_at, missing.ended_at, codes(missing))
