#!/bin/sh
# Certificates for mutual TLS between Temporal and its clients (docs/security.md,
# "The deployment's trust model"): a private CA, the Temporal server's certificate
# and one client certificate per component, made with openssl.
#
#   deploy/generate-tls.sh [DIR]        # DIR defaults to deploy/tls beside this script
#
# DIR/ca/ca.key, ca.pem    the CA. Its key signs every certificate Temporal accepts:
#                          keep it here (renewals need it) or offline, never in a container
# DIR/temporal/            the server's certificate (the front end and its internode traffic)
# DIR/api/, worker/, ui/, admin/
#                          one client certificate each: tls.pem, tls.key and ca.pem
#
# docker-compose.yml mounts each component's directory, and only it, into that
# component's containers. Safe to run again: the CA is kept, and a certificate is
# issued again only when it is missing or expires within 30 days (restart the
# services to load renewed ones). Start over with a new CA by removing DIR.
#
# Run as root (e.g. in a container) and each key belongs to the uid that reads it
# (TLS_OWNERS, mode 0400); otherwise the keys are 0644 in a 0700 DIR, so that the
# containers' own users can read them through their mounts and no other user of
# the host can.
#
# Settings (environment): TLS_SERVER_NAMES (DNS names of the server certificate,
# default "temporal localhost"), TLS_CLIENTS (default "api worker ui admin"),
# TLS_CA_DAYS (3650), TLS_DAYS (365), TLS_OWNERS ("temporal:1000 ui:1000
# admin:1000 api:10001 worker:10001": the temporalio images run as uid 1000, the
# pim image as 10001).
set -eu

here=$(cd "$(dirname "$0")" && pwd)
dir=${1:-$here/tls}
server_names=${TLS_SERVER_NAMES:-temporal localhost}
clients=${TLS_CLIENTS:-api worker ui admin}
ca_days=${TLS_CA_DAYS:-3650}
days=${TLS_DAYS:-365}
owners=${TLS_OWNERS:-temporal:1000 ui:1000 admin:1000 api:10001 worker:10001}
renew_within=2592000 # 30 days, in seconds

command -v openssl >/dev/null || { echo "generate-tls.sh: openssl is needed" >&2; exit 1; }
umask 077
mkdir -p "$dir/ca"
chmod 0700 "$dir"
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

new_key() { # an ECDSA P-256 key, PKCS#8 PEM (Go, rustls and OpenSSL all read it)
    openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 -out "$1" 2>/dev/null
}

serial() { # 128 random bits, positive
    echo "0x7$(openssl rand -hex 15)"
}

if [ ! -s "$dir/ca/ca.key" ] || [ ! -s "$dir/ca/ca.pem" ]; then
    new_key "$dir/ca/ca.key"
    cat >"$work/ca.cnf" <<CNF
[req]
distinguished_name = dn
prompt = no
x509_extensions = ca
[dn]
CN = PIM Temporal CA
[ca]
basicConstraints = critical, CA:TRUE, pathlen:0
keyUsage = critical, keyCertSign, cRLSign
subjectKeyIdentifier = hash
CNF
    openssl req -x509 -new -config "$work/ca.cnf" -key "$dir/ca/ca.key" -sha256 \
        -days "$ca_days" -set_serial "$(serial)" -out "$dir/ca/ca.pem"
    echo "generate-tls.sh: new CA in $dir/ca"
fi
chmod 0600 "$dir/ca/ca.key"
chmod 0644 "$dir/ca/ca.pem"

# issue COMPONENT COMMON_NAME EXTENDED_KEY_USAGE SUBJECT_ALT_NAMES
issue() {
    out="$dir/$1"
    mkdir -p "$out"
    if [ -s "$out/tls.pem" ] && [ -s "$out/tls.key" ] \
        && openssl x509 -in "$out/tls.pem" -noout -checkend "$renew_within" >/dev/null \
        && openssl verify -CAfile "$dir/ca/ca.pem" "$out/tls.pem" >/dev/null 2>&1; then
        return 0 # valid for 30 days or more, and from this CA
    fi
    new_key "$work/$1.key"
    openssl req -new -key "$work/$1.key" -subj "/CN=$2" -out "$work/$1.csr"
    cat >"$work/$1.ext" <<EXT
basicConstraints = critical, CA:FALSE
keyUsage = critical, digitalSignature
extendedKeyUsage = $3
subjectAltName = $4
subjectKeyIdentifier = hash
authorityKeyIdentifier = keyid
EXT
    openssl x509 -req -in "$work/$1.csr" -CA "$dir/ca/ca.pem" -CAkey "$dir/ca/ca.key" \
        -set_serial "$(serial)" -days "$days" -sha256 -extfile "$work/$1.ext" -out "$work/$1.pem" 2>/dev/null
    mv "$work/$1.key" "$out/tls.key"
    mv "$work/$1.pem" "$out/tls.pem"
    echo "generate-tls.sh: issued $out/tls.pem ($2)"
}

# settle COMPONENT: the CA beside the certificate, and who may read the key
settle() {
    out="$dir/$1"
    cp "$dir/ca/ca.pem" "$out/ca.pem"
    chmod 0755 "$out"
    chmod 0644 "$out/tls.pem" "$out/ca.pem"
    if [ "$(id -u)" = 0 ]; then
        uid=""
        for pair in $owners; do
            if [ "${pair%%:*}" = "$1" ]; then uid=${pair#*:}; fi
        done
        if [ -n "$uid" ]; then
            chown -R "$uid:$uid" "$out"
            chmod 0400 "$out/tls.key"
            return 0
        fi
    fi
    chmod 0644 "$out/tls.key"
}

sans=""
for name in $server_names; do sans="${sans:+$sans, }DNS:$name"; done
# The server certificate is also the client certificate of Temporal's own services
# when they call each other and the front end: it needs both usages.
issue temporal temporal "serverAuth, clientAuth" "$sans, IP:127.0.0.1"
settle temporal
for client in $clients; do
    issue "$client" "pim-$client" clientAuth "DNS:pim-$client"
    settle "$client"
done
