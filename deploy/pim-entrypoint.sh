#!/bin/sh
# The entrypoint of the pim containers in docker-compose.yml: `pim "$@"`, after
# reading each setting named PIM_<NAME>_FILE from that file into PIM_<NAME>.
#
# The keys reach the containers as compose secrets (files under /run/secrets), so
# they are in no image, no `docker inspect` and no `docker compose config` output;
# pim reads its settings from the environment, and this turns the one into the
# other for the pim process alone. A file that cannot be read stops the start,
# naming the setting (never the content).
set -eu

for variable in $(env | sed -n 's/^\(PIM_[A-Z0-9_]*\)_FILE=.*/\1/p'); do
    eval "path=\${${variable}_FILE}"
    if [ ! -r "$path" ]; then
        echo "pim-entrypoint: ${variable}_FILE: cannot read $path" >&2
        exit 78 # EX_CONFIG
    fi
    value=$(cat "$path")
    export "$variable=$value"
    unset "${variable}_FILE"
done

exec pim "$@"
