from datetime import timedelta

from pim.mfa import current_code
from pim.models import AccessType, ActivationRequest, MfaEvidence
from tests.conftest import running_worker


async def test_approved_request_is_granted_and_revoked(time_env, demo):
    async with running_worker(time_env, demo) as pim:
        code = current_code(await demo.mfa_secret("alice"))
        rid = await pim.start(ActivationRequest(group_id="grp-ops", access=AccessType.member, principal_id="alice",
                                                duration=timedelta(hours=2), justification="INC-42 database failover",
                                                mfa=MfaEvidence(code=code)))
        await time_env.sleep(timedelta(seconds=1))
        st = await pim.status(rid)
        print(st.state, st.violations)
        await pim.approve(rid, "bob", "ok go ahead")
        await time_env.sleep(timedelta(seconds=1))
        st = await pim.status(rid)
        print(st.state, st.granted_at, st.expires_at)
        print(await demo.has_membership("grp-ops", AccessType.member, "alice"))
        async with time_env.time_skipping_unlocked():
            final = await pim.result(rid)
        print(final.model_dump_json(indent=1))
        print(await demo.has_membership("grp-ops", AccessType.member, "alice"))
