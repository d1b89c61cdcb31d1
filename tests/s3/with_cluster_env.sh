#!/usr/bin/env bash
# Runs a command with the S3 settings of the test cluster (the env file ceph_cluster.sh
# writes) exported. Fails loudly when the file is missing: an S3 test never skips.
set -euo pipefail
env_file=${1:?usage: with_cluster_env.sh ENV_FILE COMMAND...}
shift
if [[ ! -s $env_file ]]; then
  echo "with_cluster_env: $env_file is missing: the ceph cluster fixture did not start" >&2
  exit 1
fi
set -a
# shellcheck disable=SC1090
. "$env_file"
set +a
exec "$@"
