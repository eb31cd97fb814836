import asyncio, time
from datetime import timedelta
from pim.models import AccessType, ActivationRequest, State
from tests.conftest import running_worker

async def test_probe(time_env, demo):
    t0 = time.monotonic()
    async with running_worker(time_env, demo, directory_faults="add:hang:1") as pim:
        rid = await pim.start(ActivationRequest(group_id="grp-dev", access=AccessType.member, principal_id="alice",
                                                justification="deploy the 1.4 hotfix to staging", duration=timedelta(hours=1)))
        for i in range(8):
            await time_env.sleep(timedelta(seconds=20))
            st = await pim.status(rid)
            print(i, round(time.monotonic()-t0, 1), st.state, await time_env.get_current_time())
        print([ (e.state, e.note) for e in st.events])
