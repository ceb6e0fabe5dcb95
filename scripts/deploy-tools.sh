# The tools that check deploy/, pinned: Kubernetes' schemas, checkov's policies, hadolint. Read by
# scripts/setup.sh (which installs them) and scripts/deploy-check.sh (which runs them).
KUBERNETES_VALIDATE_VERSION=1.37.0
CHECKOV_VERSION=3.3.30
HADOLINT_VERSION=2.15.1
DEPLOY_VENV=${XDG_CACHE_HOME:-$HOME/.cache}/parallax/deploy-check-$KUBERNETES_VALIDATE_VERSION-$CHECKOV_VERSION-$HADOLINT_VERSION
