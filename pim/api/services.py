"""What the API's handlers use, made once per process: the store, a `PimClient`
that signs with the API's key, the verifier of callers' tokens, the rate limiter.

The API is the production front end (docs/security.md): it alone holds the signing
key whose proofs the workers trust, and it signs only for the authenticated caller."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from pim.api.limits import Limit, RateLimiter
from pim.client import PimClient
from pim.directories import build_directory
from pim.domain.actors import Action
from pim.identity.actors import ProofPolicy
from pim.identity.oidc import OidcVerifier
from pim.identity.proofs import SigningKey, TrustedKeys
from pim.operations.context import ADMIN_TARGET, AdminContext, admin_payload
from pim.runtime.settings import PimSettings
from pim.store import Store

if TYPE_CHECKING:
    from pim.api.auth import Caller


@dataclass
class ApiServices:
    settings: PimSettings
    store: Store
    pim: PimClient  # holds the API's signing key
    verifier: OidcVerifier
    limiter: RateLimiter = field(default_factory=RateLimiter)
    # Closed with the services (what `open` made); tests pass their own and keep them.
    owned: bool = False

    @property
    def signer(self) -> SigningKey:
        assert self.pim.signer is not None  # checked when the services are made
        return self.pim.signer

    def __post_init__(self) -> None:
        if self.pim.signer is None:
            raise ValueError("PIM_PROOF_SIGNING_KEY: the API signs its callers' proofs and needs a key (docs/security.md)")
        minute = 60.0
        self.request_limit = Limit("requests", self.settings.api_rate_requests, minute)
        self.decision_limit = Limit("decisions", self.settings.api_rate_decisions, minute)
        self.mfa_failure_limit = Limit("failed MFA codes", self.settings.api_rate_mfa_failures, 15 * minute)
        # Unauthenticated attempts, per client address: a token guesser is slowed down too.
        self.anonymous_limit = Limit("unauthenticated requests", self.settings.api_rate_requests, minute)

    @classmethod
    async def open(cls, settings: PimSettings) -> "ApiServices":
        """From PIM_* settings: the issuer (PIM_OIDC_*), the signing key, Temporal and the store."""
        from pim.identity import totp as mfa
        from pim.identity.oidc import configured_verifier
        from pim.identity.proofs import configured_signing_key
        from pim.identity.secrets import configured_cipher
        from pim.runtime.temporal import connect_with

        verifier = configured_verifier(settings)
        if verifier is None:
            raise ValueError("PIM_OIDC_ISSUER: the API authenticates its callers with the company's issuer; set it")
        signer = configured_signing_key(settings)
        client = PimClient(await connect_with(settings), settings.task_queue, mfa.seal_key(settings), signer)
        store = Store.open(settings.database_url, secrets=configured_cipher(settings))
        return cls(settings, store, client, verifier, owned=True)

    async def close(self) -> None:
        if self.owned:
            await self.store.close()

    @asynccontextmanager
    async def admin(self, caller: Caller) -> AsyncIterator[AdminContext]:
        """An administrative context for the caller, proven like any front end's:
        signed here with the API's key and checked by the operation."""
        proof = self.signer.sign(
            actor=caller.principal_id, action=Action.admin.value, target=ADMIN_TARGET, payload=admin_payload(caller.principal_id)
        )
        own_key = ProofPolicy(TrustedKeys([self.signer.trusted()]))
        directory = build_directory(self.settings, self.store)
        try:
            yield await AdminContext.proven(
                self.store,
                caller.principal_id,
                proof,
                own_key,
                temporal=self.pim.temporal,
                task_queue=self.pim.task_queue,
                directory=directory,
                signer=self.signer,
                sign_in=caller.sign_in_evidence(),
            )
        finally:
            close = getattr(directory, "aclose", None)
            if close is not None:
                await close()
