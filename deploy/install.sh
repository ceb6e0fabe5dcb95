#!/usr/bin/env bash
# Installs Parallax in a Kubernetes cluster with one command, against a Postgres and a NATS you
# already run: the overlay of deploy/ (cpu or gpu), the Secret of their URLs (and a metrics
# token), the coordinator's TLS Secret, and the render hosts' domain and certificate, applied
# together with `kubectl apply`. With --print, writes what it would apply instead (no cluster
# needed; CI checks it so).
#
#   deploy/install.sh --database-url 'postgres://…' --nats-url 'tls://…' \
#     --tls-cert tls.crt --tls-key tls.key --ca ca.crt \
#     --host-domain hosts.showroom.lan --host-tls-cert hosts.crt --host-tls-key hosts.key \
#     [--storage-class nfs-client] [--overlay gpu] [--print]
#
# Devices reach each render host at NODE.DOMAIN (a DNS name per node) on a node port of its pod's
# own; --host-tls-cert is a certificate for *.DOMAIN (the hosts', not the coordinator's).
# --storage-class names a class of ReadWriteMany volumes for the replicas' shared models folder
# (without it, the cluster's default class, which must be able to share); a volume's class
# cannot change once it is made.
#
# The URLs hold passwords: pass them from the environment (PARALLAX_DATABASE_URL,
# PARALLAX_NATS_URL) to keep them out of your shell history and `ps`.
set -euo pipefail
cd "$(dirname "$0")/.."

usage() {
  sed -n '2,20p' "$0" | sed 's/^# \{0,1\}//' >&2
  exit 2
}

overlay=cpu
database_url=${PARALLAX_DATABASE_URL:-}
nats_url=${PARALLAX_NATS_URL:-}
metrics_token=${PARALLAX_METRICS_TOKEN:-}
tls_cert='' tls_key='' ca='' print=''
host_domain='' host_tls_cert='' host_tls_key='' storage_class=''
while [ $# -gt 0 ]; do
  case "$1" in
    --overlay) overlay=$2; shift 2 ;;
    --database-url) database_url=$2; shift 2 ;;
    --nats-url) nats_url=$2; shift 2 ;;
    --metrics-token) metrics_token=$2; shift 2 ;;
    --tls-cert) tls_cert=$2; shift 2 ;;
    --tls-key) tls_key=$2; shift 2 ;;
    --ca) ca=$2; shift 2 ;;
    --host-domain) host_domain=$2; shift 2 ;;
    --host-tls-cert) host_tls_cert=$2; shift 2 ;;
    --host-tls-key) host_tls_key=$2; shift 2 ;;
    --storage-class) storage_class=$2; shift 2 ;;
    --print) print=1; shift ;;
    -h|--help) usage ;;
    *) echo "install.sh: unknown argument $1" >&2; usage ;;
  esac
done

fail() { echo "install.sh: $*" >&2; exit 2; }
[ -d "deploy/overlays/$overlay" ] || fail "no overlay deploy/overlays/$overlay (cpu or gpu)"
[ -n "$database_url" ] || fail "--database-url (or PARALLAX_DATABASE_URL): your Postgres"
case "$database_url" in postgres://*|postgresql://*) ;; *) fail "--database-url must be postgres://…" ;; esac
[ -n "$nats_url" ] || fail "--nats-url (or PARALLAX_NATS_URL): your NATS server"
case "$nats_url" in nats://*|tls://*) ;; *) fail "--nats-url must be nats://… or tls://…" ;; esac
for file in "$tls_cert" "$tls_key" "$ca"; do
  [ -n "$file" ] || fail "--tls-cert, --tls-key and --ca: the coordinator's certificate, its key, and the CA devices trust"
  [ -r "$file" ] || fail "cannot read $file"
done
label='[a-z0-9]([-a-z0-9]*[a-z0-9])?'
[[ "$host_domain" =~ ^$label(\.$label)*$ ]] \
  || fail "--host-domain: the DNS domain the nodes' names are under for devices (e.g. hosts.showroom.lan)"
[ -z "$storage_class" ] || [[ "$storage_class" =~ ^$label(\.$label)*$ ]] \
  || fail "--storage-class: the name of a StorageClass"
for file in "$host_tls_cert" "$host_tls_key"; do
  [ -n "$file" ] || fail "--host-tls-cert and --host-tls-key: a certificate for *.$host_domain and its key"
  [ -r "$file" ] || fail "cannot read $file"
done
command -v kubectl > /dev/null || fail "kubectl is missing (scripts/setup.sh installs it)"
if [ -z "$metrics_token" ]; then
  metrics_token=$(od -An -N24 -tx1 /dev/urandom | tr -d ' \n')
fi

namespace=parallax
# The values go to kubectl in files only this user reads, not on its command line.
values=$(mktemp -d)
# The overlay with the volume's class: a kustomization beside the overlays (kustomize takes
# relative paths only).
patched=$(mktemp -d deploy/.install.XXXXXX)
trap 'rm -rf "$values" "$patched"' EXIT
chmod 700 "$values"
printf %s "$database_url" > "$values/database-url"
printf %s "$nats_url" > "$values/nats-url"
printf %s "$metrics_token" > "$values/metrics-token"
secret() {
  # Made on this machine (client side), never echoed.
  kubectl create secret generic "$@" --namespace "$namespace" --dry-run=client -o yaml \
    | grep -v '^  creationTimestamp: null$'
}
# The overlay, with the shared volume's class when one is given.
overlay_rendered() {
  if [ -z "$storage_class" ]; then
    kubectl kustomize "deploy/overlays/$overlay"
    return
  fi
  cat > "$patched/kustomization.yaml" <<EOF
apiVersion: kustomize.config.k8s.io/v1beta1
kind: Kustomization
resources:
  - ../overlays/$overlay
patches:
  - target:
      kind: PersistentVolumeClaim
      name: parallax-shared
    patch: |-
      - op: add
        path: /spec/storageClassName
        value: $storage_class
EOF
  kubectl kustomize "$patched"
}
manifests() {
  overlay_rendered
  echo ---
  secret parallax-external --from-file="$values/database-url" --from-file="$values/nats-url" \
    --from-file="$values/metrics-token"
  echo ---
  secret parallax-tls --from-file=tls.crt="$tls_cert" --from-file=tls.key="$tls_key" \
    --from-file=ca.crt="$ca"
  echo ---
  secret parallax-host-tls --type=kubernetes.io/tls --from-file=tls.crt="$host_tls_cert" \
    --from-file=tls.key="$host_tls_key"
  echo ---
  kubectl create configmap parallax-hosts --namespace "$namespace" \
    --from-literal=domain="$host_domain" --dry-run=client -o yaml \
    | grep -v '^  creationTimestamp: null$'
}

if [ -n "$print" ]; then
  manifests
  exit 0
fi
manifests | kubectl apply -f -
echo "Parallax is starting in namespace $namespace: kubectl -n $namespace rollout status deployment/parallax-coordinator" >&2
