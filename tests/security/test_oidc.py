"""Step-up MFA with an identity provider (pim/oidc.py): tokens signed here, keys
served over real HTTP by tests/oidc_idp.py, and the admission activity that uses
a token up (replay) except in a dry run."""

from __future__ import annotations

import hashlib
import hmac
import time
import uuid
from datetime import UTC, datetime, timedelta

import jwt
import pytest
import structlog.testing
from cryptography.hazmat.primitives import serialization
from pydantic import ValidationError

from activities.admission import AdmissionActivities
from pim.domain.activation_rules import EligibilityFacts, check_mfa_presence
from pim.domain.actors import Action
from pim.domain.models import AccessType, ActivationRequest, MfaEvidence, violations_from_validation_error
from pim.domain.policy import ActivationSettings, Policy
from pim.domain.status import AdmitInput
from pim.identity.oidc import ASYMMETRIC, JwksCache, JwksUnavailable, OidcConfig, OidcVerifier, configured_verifier, parse_jwks
from pim.runtime.settings import PimSettings
from tests.conftest import TEST_PROOFS, signed
from tests.oidc_idp import AUDIENCE, DROP, FakeIdp, b64, private_key, public_jwk

POLICY = ActivationSettings(require_mfa=True)


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def idp():
    with FakeIdp() as server:
        server.publish("rsa-1", "ec-1")
        yield server


@pytest.fixture
def clock():
    return FakeClock()


@pytest.fixture
def verifier(idp, clock):
    config = OidcConfig(issuer=idp.issuer, audiences=(AUDIENCE,), jwks_url=idp.jwks_url)
    return OidcVerifier(config, JwksCache(idp.issuer, idp.jwks_url, clock=clock))


async def verdict_code(verifier: OidcVerifier, token: str, principal: str = "alice", settings=POLICY) -> str | None:
    verdict = await verifier.verify(token, principal, settings)
    for v in verdict.violations:
        assert token not in v.message and token[-20:] not in v.message  # never echoed
        assert v.message.startswith("mfa.token: ")
    return verdict.violations[0].code if verdict.violations else None


# --- what passes --------------------------------------------------------------------------


async def test_a_valid_rsa_token_passes_and_names_what_to_use_up(verifier, idp):
    verdict = await verifier.verify(idp.token(), "alice", POLICY)
    assert verdict.violations == [] and len(verdict.replay_key) == 64


async def test_a_valid_ec_token_passes(verifier, idp):
    assert await verdict_code(verifier, idp.token(key="ec-1")) is None


async def test_an_rsa_pss_token_passes(verifier, idp):
    assert await verdict_code(verifier, idp.token(alg="PS256")) is None


async def test_keys_are_found_through_oidc_discovery(idp):
    verifier = OidcVerifier(OidcConfig(issuer=idp.issuer, audiences=(AUDIENCE,)))
    assert await verdict_code(verifier, idp.token()) is None
    assert idp.hits["/.well-known/openid-configuration"] == 1 and idp.hits["/jwks"] == 1


async def test_the_principal_can_be_named_by_another_claim(idp):
    config = OidcConfig(issuer=idp.issuer, audiences=(AUDIENCE,), jwks_url=idp.jwks_url, principal_claim="preferred_username")
    verifier = OidcVerifier(config)
    assert await verdict_code(verifier, idp.token(sub="00u1abc", preferred_username="alice")) is None
    assert await verdict_code(verifier, idp.token(sub="alice", preferred_username="bob")) == "mfa_wrong_subject"


async def test_the_same_token_without_jti_is_keyed_by_its_hash(verifier, idp):
    token = idp.token(jti=DROP)
    verdict = await verifier.verify(token, "alice", POLICY)
    assert verdict.replay_key == hashlib.sha256(f"token\0{token}".encode()).hexdigest()


# --- what is refused ----------------------------------------------------------------------


# Times (exp, nbf, auth_time) are offsets from the moment the test runs: the parameters
# are made at collection, which a long suite leaves many minutes behind.
@pytest.mark.parametrize(
    ("overrides", "code"),
    [
        ({"exp": -120}, "mfa_token_expired"),
        ({"nbf": 600}, "mfa_token_not_yet_valid"),
        ({"iss": "https://idp.example.com"}, "mfa_wrong_issuer"),
        ({"aud": "another-app"}, "mfa_wrong_audience"),
        ({"aud": DROP}, "mfa_invalid"),
        ({"exp": DROP}, "mfa_invalid"),
        ({"amr": ["pwd"]}, "mfa_insufficient"),
        ({"amr": DROP}, "mfa_insufficient"),
        ({"auth_time": -11 * 60}, "mfa_stale"),
        ({"auth_time": DROP}, "mfa_stale"),
        ({"auth_time": 600}, "mfa_invalid"),
    ],
)
async def test_a_token_that_breaks_a_rule_is_refused_with_its_code(verifier, idp, overrides, code):
    timed = {"exp", "nbf", "auth_time"}
    claims = {k: int(time.time()) + v if k in timed and isinstance(v, int) else v for k, v in overrides.items()}
    assert await verdict_code(verifier, idp.token(**claims)) == code


async def test_a_token_issued_to_someone_else_is_refused(verifier, idp):
    assert await verdict_code(verifier, idp.token(sub="bob"), "alice") == "mfa_wrong_subject"


async def test_the_policy_sets_how_old_the_sign_in_may_be(verifier, idp):
    token = idp.token(auth_time=int(time.time()) - 20 * 60)
    assert await verdict_code(verifier, token) == "mfa_stale"
    assert (
        await verdict_code(verifier, token, settings=POLICY.model_copy(update={"mfa_max_auth_age": timedelta(minutes=30)}))
        is None
    )


async def test_a_required_authentication_context_must_be_the_acr(verifier, idp):
    strict = ActivationSettings(require_mfa=True, mfa_auth_context="c1")
    assert await verdict_code(verifier, idp.token(acr="c2"), settings=strict) == "mfa_insufficient"
    assert await verdict_code(verifier, idp.token(), settings=strict) == "mfa_insufficient"  # amr mfa is not enough
    assert await verdict_code(verifier, idp.token(acr="c1", amr=DROP), settings=strict) is None
    assert await verdict_code(verifier, idp.token(acrs=["c1", "c3"]), settings=strict) is None


@pytest.mark.parametrize(
    "token",
    [
        "a.b.c",
        f"{b64({'alg': ['RS256'], 'kid': 'rsa-1'})}.{b64({'sub': 'alice'})}.c2ln",
        f"{b64({'alg': 'RS256', 'kid': 'rsa-1'})}.{b64(b'[1, 2]')}.c2ln",
        f"{b64({'alg': 'RS256', 'kid': ['rsa-1']})}.{b64({'sub': 'alice'})}.c2ln",
    ],
)
async def test_garbage_is_refused_as_invalid_never_an_error(verifier, token):
    assert await verdict_code(verifier, token) == "mfa_invalid"


async def test_a_tampered_token_is_refused(verifier, idp):
    header, payload, signature = idp.token().split(".")
    forged = b64({**idp.claims(), "sub": "alice", "amr": ["mfa"]})
    assert await verdict_code(verifier, f"{header}.{forged}.{signature}") == "mfa_invalid"


async def test_an_unsigned_token_alg_none_is_refused(verifier, idp):
    token = f"{b64({'alg': 'none', 'typ': 'JWT', 'kid': 'rsa-1'})}.{b64(idp.claims())}."
    MfaEvidence(method="oidc", token=token)  # the wire shape admits it, the verifier refuses it
    assert await verdict_code(verifier, token) == "mfa_invalid"
    assert idp.hits["/jwks"] == 0  # refused before any key was looked up


async def test_hs256_signed_with_the_published_rsa_key_is_refused(verifier, idp):
    """The key-confusion attack: the public key (PEM) used as an HMAC secret."""
    pem = (
        private_key("rsa-1")
        .public_key()
        .public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
    )
    signing_input = f"{b64({'alg': 'HS256', 'typ': 'JWT', 'kid': 'rsa-1'})}.{b64(idp.claims())}"
    signature = b64(hmac.new(pem, signing_input.encode(), hashlib.sha256).digest())
    forged = f"{signing_input}.{signature}"
    assert await verdict_code(verifier, forged) == "mfa_invalid"
    # Even past the header check, the key's own algorithms are what PyJWT is given.
    [key] = parse_jwks({"keys": [public_jwk("rsa-1")]})
    with pytest.raises(jwt.InvalidAlgorithmError):
        jwt.decode(forged, key.key, algorithms=list(key.algorithms), audience=AUDIENCE)


async def test_a_key_never_verifies_an_algorithm_its_type_does_not_allow(verifier, idp):
    # RS256 header on the EC key's kid: the algorithms come from the key, not the header.
    token = idp.token(key="rsa-1", kid="ec-1")
    assert await verdict_code(verifier, token) == "mfa_invalid"


def test_symmetric_and_foreign_keys_in_a_jwks_are_never_used():
    keys = parse_jwks(
        {
            "keys": [
                {"kty": "oct", "kid": "h", "k": b64(b"secret")},
                {"kty": "RSA", "kid": "enc", "use": "enc", "n": "AQAB", "e": "AQAB"},
                {"kty": "EC", "kid": "weird", "crv": "P-256", "alg": "HS256", "x": "", "y": ""},
                {"kty": "RSA", "kid": "broken", "n": "!!", "e": "AQAB"},
                {"kty": "EC", "kid": "odd", "crv": ["P-256"], "x": "", "y": ""},
                "not a key",
            ]
        }
    )
    assert keys == []
    [rsa] = parse_jwks({"keys": [public_jwk("rsa-1")]})
    assert set(rsa.algorithms) <= ASYMMETRIC and not any(a.startswith("HS") for a in rsa.algorithms)
    [pinned] = parse_jwks({"keys": [{**public_jwk("rsa-1"), "alg": "PS384"}]})
    assert pinned.algorithms == ("PS384",)


# --- keys: unknown kid, rotation, rate limit, outages --------------------------------------


async def test_an_unknown_key_is_refused_after_one_refetch(verifier, idp, clock):
    assert await verdict_code(verifier, idp.token()) is None
    assert idp.hits["/jwks"] == 1
    clock.now += 60
    assert await verdict_code(verifier, idp.token(key="rsa-2")) == "mfa_unknown_key"
    assert idp.hits["/jwks"] == 2


async def test_refetches_for_unknown_keys_are_rate_limited(verifier, idp, clock):
    assert await verdict_code(verifier, idp.token()) is None
    for _ in range(5):
        assert await verdict_code(verifier, idp.token(key="rsa-2", kid=uuid.uuid4().hex)) == "mfa_unknown_key"
    assert idp.hits["/jwks"] == 1  # within the refetch interval of the first fetch: no more fetches
    clock.now += 31
    assert await verdict_code(verifier, idp.token(key="rsa-2")) == "mfa_unknown_key"
    assert idp.hits["/jwks"] == 2


async def test_a_key_published_after_the_first_fetch_is_found_by_refetching(verifier, idp, clock):
    """Key rotation: the IdP publishes a new key and signs with it."""
    assert await verdict_code(verifier, idp.token()) is None
    idp.publish("rsa-2")
    clock.now += 31
    assert await verdict_code(verifier, idp.token(key="rsa-2")) is None
    assert idp.hits["/jwks"] == 2
    assert await verdict_code(verifier, idp.token(key="rsa-2")) is None
    assert idp.hits["/jwks"] == 2  # cached from then on


async def test_keys_are_refetched_when_their_ttl_has_passed(verifier, idp, clock):
    assert await verdict_code(verifier, idp.token()) is None
    clock.now += 601
    assert await verdict_code(verifier, idp.token()) is None
    assert idp.hits["/jwks"] == 2


async def test_an_unreachable_identity_provider_is_a_transient_failure(verifier, idp):
    idp.down = True
    with pytest.raises(JwksUnavailable) as caught:
        await verifier.verify(token := idp.token(), "alice", POLICY)
    assert "503" in str(caught.value) and token not in str(caught.value)


async def test_a_closed_port_is_a_transient_failure_too(idp):
    url = idp.jwks_url
    idp.__exit__(None, None, None)
    verifier = OidcVerifier(OidcConfig(issuer=idp.issuer, audiences=(AUDIENCE,), jwks_url=url))
    with pytest.raises(JwksUnavailable):
        await verifier.verify(idp.token(), "alice", POLICY)


# --- configuration ---------------------------------------------------------------------------


def test_no_issuer_means_no_verifier_and_an_issuer_needs_an_audience():
    assert configured_verifier(PimSettings()) is None
    with pytest.raises(ValueError, match="PIM_OIDC_AUDIENCE"):
        configured_verifier(PimSettings(oidc_issuer="https://idp.example.com"))
    verifier = configured_verifier(
        PimSettings(oidc_issuer="https://idp.example.com", oidc_audience="a, b", oidc_principal_claim="upn")
    )
    assert verifier.config.audiences == ("a", "b") and verifier.config.principal_claim == "upn"


@pytest.mark.parametrize("url", ["http://idp.example.com", "ftp://idp", "idp.example.com"])
def test_keys_are_never_fetched_over_plain_http_except_on_loopback(url):
    with pytest.raises(ValueError, match="https"):
        OidcConfig(issuer=url, audiences=("a",))
    OidcConfig(issuer="http://127.0.0.1:8080", audiences=("a",), jwks_url="http://localhost:8080/jwks")


# --- the wire shape, the policy and the rules ---------------------------------------------

MINIMAL = {"group_id": "grp-ops", "access": "member", "principal_id": "alice"}


def refusal(mfa: dict) -> list[str]:
    with pytest.raises(ValidationError) as caught:
        ActivationRequest.model_validate({**MINIMAL, "mfa": mfa})
    assert "SECRET" not in str(caught.value)  # not even in the exception text (CLI errors print it)
    return [v.message for v in violations_from_validation_error(caught.value)]


@pytest.mark.parametrize(
    ("mfa", "field"),
    [
        ({"method": "oidc"}, "mfa.token"),
        ({"method": "oidc", "code": "123456SECRET"}, "mfa.token"),
        ({"method": "oidc", "token": "a.b.SECRET", "code": "123456"}, "mfa.code"),
        ({"method": "oidc", "token": "SECRET"}, "mfa.token"),
        ({"method": "oidc", "token": "a.b.c" + "SECRET" * 3000}, "mfa.token"),
        ({"method": "oidc", "token": "a.b.SECRET", "sealed": True}, "mfa.sealed"),
        ({"method": "totp", "token": "a.b.SECRET"}, "mfa.code"),
        ({"method": "totp", "code": "123456", "token": "a.b.SECRET"}, "mfa.token"),
    ],
)
def test_each_method_needs_its_own_field_and_errors_name_it(mfa, field):
    messages = refusal(mfa)
    assert [m.split(":", 1)[0] for m in messages] == [field]
    assert not any("SECRET" in m for m in messages)


def test_oidc_evidence_never_shows_its_token():
    token = "eyJhbGciOiJSUzI1NiJ9.eyJzdWIiOiJhbGljZSJ9.SECRETSIG"
    request = ActivationRequest.model_validate({**MINIMAL, "mfa": {"method": "oidc", "token": token}})
    for text in (repr(request), str(request), repr(request.mfa), f"{request.mfa}"):
        assert "SECRETSIG" not in text and "eyJ" not in text
    assert request.mfa.token == token  # but it is on the wire, for the worker to verify


def test_the_policy_lists_methods_and_bounds_the_sign_in_age():
    default = ActivationSettings()
    assert default.mfa_methods == ["totp", "oidc"] and default.mfa_auth_context is None
    assert default.mfa_max_auth_age == timedelta(minutes=10)
    for age in ("PT30S", "PT2H"):
        with pytest.raises(ValidationError, match="mfa_max_auth_age"):
            ActivationSettings(mfa_max_auth_age=age)
    with pytest.raises(ValidationError):
        ActivationSettings(mfa_methods=[])
    with pytest.raises(ValidationError):
        ActivationSettings(mfa_methods=["sms"])


def test_the_rules_refuse_a_method_the_policy_does_not_allow_and_oidc_needs_no_totp_enrolment():
    token_request = ActivationRequest(**MINIMAL, mfa=MfaEvidence(method="oidc", token="a.b.c"))
    totp_only = ActivationSettings(require_mfa=True, mfa_methods=["totp"])
    [v] = check_mfa_presence(token_request, totp_only, EligibilityFacts(mfa_enrolled=True))
    assert v.code == "mfa_method_not_allowed" and v.message.startswith("mfa.method:")
    assert check_mfa_presence(token_request, POLICY, EligibilityFacts(mfa_enrolled=False)) == []


# --- the admission activity: a token is used once, by a dry run too -----------------------


async def admit(activities: AdmissionActivities, token: str, *, validate_only: bool = False, **fields):
    run_key = f"activation/grp-ops/member/alice#{uuid.uuid4()}"
    fields.setdefault("justification", "INC-42 database failover")
    request = ActivationRequest(
        group_id="grp-ops",
        access=AccessType.member,
        principal_id="alice",
        validate_only=validate_only,
        mfa=MfaEvidence(method="oidc", token=token),
        **fields,
    )
    request = ActivationRequest.model_validate(signed(request, "alice", Action.request, request.workflow_id))
    admission = await activities.admit_request(
        AdmitInput(request_id=run_key.split("#")[0], run_key=run_key, request=request, at=datetime.now(UTC))
    )
    if admission.admitted and not validate_only:
        await activities.store.release_activation(run_key)  # let the next attempt claim again
    return [v.code for v in admission.violations], run_key


async def test_a_token_is_used_once_and_a_dry_run_uses_it_up(demo, verifier, idp):
    await demo.set_policy(
        "grp-ops", AccessType.member, Policy(activation=ActivationSettings(require_mfa=True, mfa_methods=["oidc"])), by="test"
    )
    activities = AdmissionActivities(demo, TEST_PROOFS, mfa_seal_key=None, oidc_verifier=verifier)
    tried = idp.token()
    with structlog.testing.capture_logs() as logged:
        assert (await admit(activities, tried, validate_only=True))[0] == []
    assert logged and tried not in str(logged)
    # The dry run used it: copied from its history, it is good for nothing.
    assert (await admit(activities, tried, validate_only=True))[0] == ["mfa_replayed"]
    assert (await admit(activities, tried))[0] == ["mfa_replayed"]
    token = idp.token()
    codes, run_key = await admit(activities, token)
    assert codes == []
    assert (await admit(activities, token))[0] == ["mfa_replayed"]
    assert (await admit(activities, idp.token(jti=DROP)))[0] == []  # another token, keyed by its hash
    # An activity retry of the same run presents the same token again: still its own.
    assert await demo.consume_mfa_token(
        "alice", (await verifier.verify(token, "alice", POLICY)).replay_key, run_key, datetime.now(UTC)
    )
    used = [row for row in await demo.audit(principal_id="alice") if row.action == "mfa_token_used"]
    assert len(used) == 3 and all(t not in str(row.details) for row in used for t in (tried, token))


async def test_a_token_is_used_up_when_the_request_is_refused_for_another_reason(demo, verifier, idp):
    await demo.set_policy(
        "grp-ops",
        AccessType.member,
        Policy(activation=ActivationSettings(require_mfa=True, mfa_methods=["oidc"], require_ticket=True)),
        by="test",
    )
    activities = AdmissionActivities(demo, TEST_PROOFS, mfa_seal_key=None, oidc_verifier=verifier)
    token = idp.token()
    assert (await admit(activities, token))[0] == ["ticket_required"]
    assert (await admit(activities, token, ticket={"system": "jira", "number": "OPS-1"}))[0] == ["mfa_replayed"]
    # A genuine token that this policy finds too weak is used up too; someone else's is left alone.
    weak = idp.token(amr=["pwd"])
    assert (await admit(activities, weak, ticket={"system": "jira", "number": "OPS-1"}))[0] == ["mfa_insufficient"]
    assert (await admit(activities, weak, ticket={"system": "jira", "number": "OPS-1"}))[0] == ["mfa_replayed"]
    bobs = idp.token("bob")
    assert (await admit(activities, bobs, ticket={"system": "jira", "number": "OPS-1"}))[0] == ["mfa_wrong_subject"]
    assert (await verifier.verify(bobs, "bob", POLICY)).replay_key is not None
    used = [row for row in await demo.audit() if row.action == "mfa_token_used"]
    assert len(used) == 2


async def test_a_token_without_a_configured_issuer_is_refused_as_not_configured(demo, idp):
    await demo.set_policy("grp-ops", AccessType.member, Policy(activation=ActivationSettings(require_mfa=True)), by="test")
    codes, _ = await admit(AdmissionActivities(demo, TEST_PROOFS, mfa_seal_key=None, oidc_verifier=None), idp.token())
    assert codes == ["mfa_not_configured"]


# --- the command line ---------------------------------------------------------------------------


def test_the_command_line_takes_a_token_from_an_option_or_a_file(tmp_path, monkeypatch):
    import io

    from pim.cli.common import CliError
    from pim.cli.requests import mfa_evidence

    path = tmp_path / "token.jwt"
    path.write_text("a.b.c\n")
    assert mfa_evidence(None, None, str(path)) == {"method": "oidc", "token": "a.b.c"}
    monkeypatch.setattr("sys.stdin", io.StringIO("d.e.f\n"))
    assert mfa_evidence(None, None, "-") == {"method": "oidc", "token": "d.e.f"}
    assert mfa_evidence(None, "g.h.i", None) == {"method": "oidc", "token": "g.h.i"}
    assert mfa_evidence("123456", None, None) == {"method": "totp", "code": "123456"}
    assert mfa_evidence(None, None, None) is None
    with pytest.raises(CliError, match="one of"):
        mfa_evidence("123456", "g.h.i", None)
    with pytest.raises(CliError, match="cannot read"):
        mfa_evidence(None, None, str(tmp_path / "missing"))
