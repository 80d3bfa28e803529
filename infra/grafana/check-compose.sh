#!/usr/bin/env bash
# Static check of the top-level docker-compose.yml with Debian's docker-compose (1.29, which
# validates against the compose-spec JSON schema and resolves .env interpolation, anchors,
# depends_on and healthchecks). No Docker engine is needed or contacted.
# Installs docker-compose with apt when it is missing. Usage: infra/grafana/check-compose.sh
# Prints the resolved configuration on success; exits non-zero with compose's error otherwise.
set -euo pipefail
cd "$(dirname "$0")/../.."
if ! command -v docker-compose >/dev/null 2>&1; then
  if [ "$(id -u)" -ne 0 ]; then
    echo "docker-compose is missing; install it with: sudo apt-get install -y docker-compose" >&2
    exit 3
  fi
  echo "installing docker-compose (apt)" >&2
  DEBIAN_FRONTEND=noninteractive apt-get update -qq >/dev/null
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends docker-compose >/dev/null
fi
docker-compose --version >&2
docker-compose --project-directory . -f docker-compose.yml config
