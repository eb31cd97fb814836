"""Checking who acts: a payload's proof against the trusted keys, used up once."""

from __future__ import annotations

from dataclasses import dataclass

from temporalio import activity

from activities.interfaces import ProofInterface
from pim.domain.actors import ActorCheck, ActorVerdict
from pim.identity.actors import ProofPolicy, check_actor
from pim.store import Store


@dataclass
class ProofActivities(ProofInterface):
    store: Store
    policy: ProofPolicy

    @activity.defn
    async def verify_actor(self, check: ActorCheck) -> ActorVerdict:
        return await check_actor(self.store, self.policy, check)
