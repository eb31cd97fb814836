from datetime import timedelta
from tests.workflows.test_approval import request_ops, finish, running_worker, after_signal, demo, end_leftovers

async def test_a(time_env, demo):
    async with running_worker(time_env, demo) as pim:
        rid = await request_ops(pim, demo)
        h = time_env.client.get_workflow_handle(rid)
        await h.signal("approve")
        await h.signal("approve", args=["bob", "x"])
        await h.signal("approve", None)
        await h.signal("approve", "bob")
        await h.signal("approve", [1,2])
        st = await after_signal(time_env, pim, rid)
        for e in st.events: print("EV", e.state, e.actor, e.note)
        await pim.approve(rid, "bob", "valid approval now")
        st = await after_signal(time_env, pim, rid)
        print("STATE", st.state)
