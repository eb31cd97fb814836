"""Step-up MFA with an identity provider, end to end: the demo tenant's grp-dev
with a policy that requires MFA by OIDC token, the real workflow on the
time-skipping server, and keys served over HTTP by tests/oidc_idp.py."""

from __future__ import annotations

import asyncio
import time
from contextlib import suppress
from datetime import timedelta

from pim.domain.models import AccessType, ActivationRequest, MfaEvidence, State
from pim.domain.policy import ActivationSettings, Policy
from pim.identity.totp import current_code
from tests.conftest import running_worker
from tests.oidc_idp import AUDIENCE, FakeIdp
from tests.polling import settled

MEMBER = AccessType.member


def request(principal: str, mfa: MfaEvidence) -> ActivationRequest:
    return ActivationRequest(
        group_id="grp-dev",
        access=MEMBER,
        principal_id=principal,
        duration=timedelta(hours=1),
        justification="deploy the 1.4 hotfix to staging",
        mfa=mfa,
    )


async def test_a_valid_token_activates_and_a_bad_one_is_rejected(time_env, demo, monkeypatch):
    await demo.set_policy(
        "grp-dev",
        MEMBER,
        Policy(activation=ActivationSettings(require_mfa=True, mfa_methods=["oidc"], max_duration=timedelta(hours=4))),
        by="admin",
    )
    with FakeIdp() as idp:
        idp.publish("rsa-1")
        # The worker reads PIM_OIDC_* when it is built, as `pim worker` does.
        monkeypatch.setenv("PIM_OIDC_ISSUER", idp.issuer)
        monkeypatch.setenv("PIM_OIDC_AUDIENCE", AUDIENCE)
        async with running_worker(time_env, demo) as pim:
            started = []

            async def outcome(req: ActivationRequest, settled: bool = False):
                rid = await pim.start(req)
                started.append(rid)
                if settled:  # an activation waits for its expiry: look at it once it is granted
                    await time_env.sleep(timedelta(seconds=1))
                    return await pim.status(rid)
                return await asyncio.wait_for(pim.result(rid), timeout=15)

            try:
                token = idp.token("alice")
                status = await outcome(request("alice", MfaEvidence(method="oidc", token=token)), settled=True)
                assert status.state == State.active and status.violations == []
                assert await demo.has_membership("grp-dev", MEMBER, "alice")
                assert token not in status.model_dump_json()

                # dave presents a token issued to alice (or one that has expired, or is unsigned).
                for bad, code in (
                    (token, "mfa_wrong_subject"),
                    (idp.token("dave", exp=int(time.time()) - 300), "mfa_token_expired"),
                    (idp.token("dave", amr=["pwd"]), "mfa_insufficient"),
                ):
                    status = await outcome(request("dave", MfaEvidence(method="oidc", token=bad)))
                    assert status.state == State.rejected
                    assert [v.code for v in status.violations] == [code]
                    assert bad not in status.model_dump_json()
                    assert not await demo.has_membership("grp-dev", MEMBER, "dave")

                # The policy allows only oidc: a right TOTP code is not accepted.
                code = current_code(await demo.mfa_secret("dave"))
                status = await outcome(request("dave", MfaEvidence(code=code)))
                assert [v.code for v in status.violations] == ["mfa_method_not_allowed"]
            finally:
                for rid in started:
                    with suppress(Exception):
                        await time_env.client.get_workflow_handle(rid).terminate("test cleanup")


async def test_an_identity_provider_that_is_briefly_down_is_retried_not_a_rejection(time_env, demo, monkeypatch):
    await demo.set_policy(
        "grp-dev", MEMBER, Policy(activation=ActivationSettings(require_mfa=True, max_duration=timedelta(hours=4))), by="admin"
    )
    with FakeIdp() as idp:
        idp.publish("rsa-1")
        monkeypatch.setenv("PIM_OIDC_ISSUER", idp.issuer)
        monkeypatch.setenv("PIM_OIDC_AUDIENCE", AUDIENCE)
        async with running_worker(time_env, demo) as pim:
            # The admission activity is retried (its backoff runs in real time here, so the
            # outage is short; a lasting one ends the request as `failed` once the retries are
            # spent, which tests/security/test_oidc.py covers at the verifier).
            idp.failures = 2
            rid = await pim.start(request("alice", MfaEvidence(method="oidc", token=idp.token("alice"))))
            # Once admission (and its retries) is over; time moves a second at a time meanwhile.
            status = await settled(pim, rid, env=time_env, interval=timedelta(seconds=1), timeout=timedelta(seconds=30))
            assert status.state == State.active and idp.hits["/.well-known/openid-configuration"] == 3
            await time_env.client.get_workflow_handle(rid).terminate("test cleanup")
