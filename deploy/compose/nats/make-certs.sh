#!/bin/sh
# A private CA and one certificate for the NATS servers, made once.
#
#   make-certs.sh OUT NAMES
#
# OUT/server/  ca.pem, server.pem, server-key.pem: what the NATS servers mount
# OUT/ca/      ca.pem alone: what the earshot nodes mount to verify the servers
#
# NAMES is the comma-separated list of DNS names the certificate is valid for (every name
# a client or another server dials). The certificate serves both client connections and the
# routes between the servers, which authenticate each other with it (so it is made for
# serverAuth and clientAuth). The CA's key exists only while this script runs: nothing
# can sign another certificate with it afterwards. To make new ones (other names, expiry
# after 825 days), delete OUT's contents and run it again, then restart the servers and the
# nodes. When OUT/server/server.pem exists it does nothing, so it can run at every start.
set -eu
out=$1
names=$2
if [ -s "$out/server/server.pem" ]; then
  echo "make-certs: $out/server/server.pem exists; nothing to do"
  exit 0
fi
command -v openssl >/dev/null 2>&1 || apk add --no-cache openssl >/dev/null
mkdir -p "$out/server" "$out/ca"
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
san=$(printf '%s' "$names" | sed 's/^/DNS:/; s/,/,DNS:/g')
openssl req -x509 -new -nodes -newkey ec -pkeyopt ec_paramgen_curve:P-256 -sha256 \
  -days 825 -subj "/CN=earshot NATS CA" \
  -addext "basicConstraints=critical,CA:TRUE" -addext "keyUsage=critical,keyCertSign,cRLSign" \
  -keyout "$work/ca-key.pem" -out "$work/ca.pem"
openssl req -new -nodes -newkey ec -pkeyopt ec_paramgen_curve:P-256 -sha256 \
  -subj "/CN=nats" -keyout "$work/server-key.pem" -out "$work/server.csr"
printf 'subjectAltName=%s\nbasicConstraints=critical,CA:FALSE\nkeyUsage=critical,digitalSignature\nextendedKeyUsage=serverAuth,clientAuth\n' \
  "$san" > "$work/ext.cnf"
openssl x509 -req -sha256 -days 825 -in "$work/server.csr" -CA "$work/ca.pem" \
  -CAkey "$work/ca-key.pem" -CAcreateserial -extfile "$work/ext.cnf" -out "$work/server.pem"
install -m 0644 "$work/ca.pem" "$out/server/ca.pem"
install -m 0644 "$work/ca.pem" "$out/ca/ca.pem"
install -m 0644 "$work/server.pem" "$out/server/server.pem"
# Read by the NATS servers only, which run as root in their image.
install -m 0600 "$work/server-key.pem" "$out/server/server-key.pem"
echo "make-certs: CA and server certificate for $names written to $out"
