#!/usr/bin/env bash
# Checks deploy/ offline: each overlay rendered with `kubectl kustomize`, every object validated
# against Kubernetes' own schemas (kubernetes-validate, strict: no unknown fields), checkov's
# Kubernetes policies on the rendered objects, and hadolint on the Dockerfile. The tools come
# from scripts/setup.sh (pinned, in a virtual environment). Exceptions are justified where they
# are made: `checkov.io/skipN` annotations on the object (kustomize drops comments), `hadolint
# ignore` beside the line.
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/deploy-tools.sh
bin=$DEPLOY_VENV/bin
rendered=$(mktemp -d /tmp/parallax-deploy.XXXXXX)
trap 'rm -rf "$rendered"' EXIT

for overlay in deploy/overlays/*/; do
  name=$(basename "$overlay")
  kubectl kustomize "$overlay" > "$rendered/$name.yaml"
  echo "deploy/overlays/$name: $(grep -c '^kind:' "$rendered/$name.yaml") objects" >&2
  "$bin/kubernetes-validate" --strict --quiet "$rendered/$name.yaml"
done
# The one-command install, printed instead of applied: the overlay and both Secrets, valid.
for file in tls.crt tls.key ca.crt hosts.crt hosts.key; do echo "not a real $file" > "$rendered/$file"; done
deploy/install.sh --print --overlay gpu --database-url 'postgres://parallax:secret@db/parallax' \
  --nats-url 'tls://nats:4222' --tls-cert "$rendered/tls.crt" --tls-key "$rendered/tls.key" \
  --ca "$rendered/ca.crt" --host-domain hosts.showroom.lan --host-tls-cert "$rendered/hosts.crt" \
  --host-tls-key "$rendered/hosts.key" --storage-class nfs-client > "$rendered/install.yaml"
grep -q '^  storageClassName: nfs-client$' "$rendered/install.yaml" \
  || { echo "install.sh left out --storage-class" >&2; exit 1; }
for name in parallax-external parallax-tls parallax-host-tls parallax-hosts parallax-coordinator \
  parallax-render-host; do
  grep -q "^  name: $name$" "$rendered/install.yaml" || { echo "install.sh left out $name" >&2; exit 1; }
done
"$bin/kubernetes-validate" --strict --quiet "$rendered/install.yaml"
rm "$rendered"/*.crt "$rendered"/*.key
# Offline: no download of guidelines or policies from the vendor's platform.
"$bin/checkov" --quiet --compact --skip-download --framework kubernetes --directory "$rendered"
"$bin/hadolint" deploy/Dockerfile
echo "deploy/: rendered, valid, no policy findings" >&2
