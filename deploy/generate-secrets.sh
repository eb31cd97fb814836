#!/bin/sh
# The keys of a deployment, one file each, for docker-compose.yml's secrets
# (docs/security.md, "The deployment's trust model"). Made with openssl: nothing
# else is needed on the host.
#
#   deploy/generate-secrets.sh [DIR]                        # DIR defaults to deploy/secrets
#   deploy/generate-secrets.sh --rotate-signing-key [DIR]
#
# proof-signing.key   the API's private key for actor proofs (PIM_PROOF_SIGNING_KEY,
#                     ISSUER:KEY_ID:BASE64URL_SEED). The API only.
# proof-trusted.keys  its public half (PIM_PROOF_TRUSTED_KEYS). The workers.
# mfa-seal.key        the HMAC key MFA codes are sealed with (PIM_MFA_SEAL_KEY). API and workers.
# mfa-secret.key      the AES-GCM key of the TOTP secrets in the store (PIM_MFA_SECRET_KEY). API and workers.
# payload.keys        the AES-GCM key of workflow payloads (PIM_PAYLOAD_KEYS). API and workers.
# portal-session.key  the AES-GCM key of the portal's session cookies (PIM_PORTAL_SESSION_KEY). The API only.
#
# A file that exists is kept: run it again after adding a key of a new kind.
# --rotate-signing-key writes a new signing key and puts its public half first in
# proof-trusted.keys, the old ones after it; restart the workers, then the API, and
# remove the old public key from proof-trusted.keys 5 minutes later (the longest a
# proof lives), then restart the workers again.
#
# Run as root and each file belongs to uid SECRETS_UID (10001, the pim image's
# user), mode 0400; otherwise the files are 0644 in a 0700 DIR, so that the
# containers' user can read them through their mounts and no other user of the
# host can. PROOF_ISSUER names the API in its proofs (default pim-api).
set -eu

rotate=false
if [ "${1:-}" = "--rotate-signing-key" ]; then
    rotate=true
    shift
fi
here=$(cd "$(dirname "$0")" && pwd)
dir=${1:-$here/secrets}
issuer=${PROOF_ISSUER:-pim-api}
owner=${SECRETS_UID:-10001}

command -v openssl >/dev/null || { echo "generate-secrets.sh: openssl is needed" >&2; exit 1; }
umask 077
mkdir -p "$dir"
chmod 0700 "$dir"
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

base64url() { # stdin to unpadded base64url on one line
    openssl base64 -A | tr '+/' '-_' | tr -d '='
}

random32() { # 32 random bytes, base64
    openssl rand -base64 32 | tr -d '\n'
}

# write NAME CONTENT: a file only when it is missing
write() {
    if [ -s "$dir/$1" ]; then
        return 0
    fi
    printf '%s\n' "$2" >"$dir/$1"
    echo "generate-secrets.sh: wrote $dir/$1"
}

# Ed25519: the last 32 bytes of the PKCS#8 DER are the seed, and of the
# SubjectPublicKeyInfo DER the public key (RFC 8410).
new_signing_key() {
    key_id="$(date -u +%Y%m%d%H%M%S)-$(openssl rand -hex 3)"
    openssl genpkey -algorithm ed25519 -out "$work/ed25519.pem"
    seed=$(openssl pkey -in "$work/ed25519.pem" -outform DER | tail -c 32 | base64url)
    public=$(openssl pkey -in "$work/ed25519.pem" -pubout -outform DER | tail -c 32 | base64url)
    printf '%s\n' "$issuer:$key_id:$seed" >"$dir/proof-signing.key"
    if [ -s "$dir/proof-trusted.keys" ]; then
        printf '%s,%s\n' "$issuer:$key_id:$public" "$(tr -d '\n' <"$dir/proof-trusted.keys")" >"$work/trusted"
    else
        printf '%s\n' "$issuer:$key_id:$public" >"$work/trusted"
    fi
    cat "$work/trusted" >"$dir/proof-trusted.keys"
    echo "generate-secrets.sh: new signing key $issuer:$key_id in $dir/proof-signing.key, trusted in $dir/proof-trusted.keys"
}

if [ ! -s "$dir/proof-signing.key" ] || [ "$rotate" = true ]; then
    new_signing_key
elif [ ! -s "$dir/proof-trusted.keys" ]; then
    echo "generate-secrets.sh: $dir/proof-trusted.keys is missing but proof-signing.key exists:" \
        "restore it, or run with --rotate-signing-key" >&2
    exit 1
fi
write mfa-seal.key "$(random32)"
write mfa-secret.key "k1:$(random32)"
write payload.keys "k1:$(random32)"
write portal-session.key "k1:$(random32)"

for file in proof-signing.key proof-trusted.keys mfa-seal.key mfa-secret.key payload.keys portal-session.key; do
    if [ "$(id -u)" = 0 ]; then
        chown "$owner:$owner" "$dir/$file"
        chmod 0400 "$dir/$file"
    else
        chmod 0644 "$dir/$file"
    fi
done
