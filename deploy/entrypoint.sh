#!/bin/sh
# Runs lightbox as the unprivileged `lightbox` user (uid 10001).
#
# A host directory bind-mounted at /data (`-v /srv/lightbox:/data`) arrives
# owned by whoever made it on the host, usually root, and uid 10001 could not
# write the database there. So the image starts as root, gives the data
# directory to `lightbox` when that user cannot write it, and then drops to
# that user for good before anything else runs. Started with `--user`, it has
# nothing to fix and runs lightbox directly.
set -eu

data_dir="${LIGHTBOX_DATA_DIR:-/data}"

if [ "$(id -u)" = 0 ]; then
    mkdir -p "$data_dir"
    if ! setpriv --reuid=lightbox --regid=lightbox --init-groups test -w "$data_dir"; then
        echo "entrypoint: giving $data_dir to user lightbox (uid 10001)" >&2
        chown -R lightbox:lightbox "$data_dir"
    fi
    exec setpriv --reuid=lightbox --regid=lightbox --init-groups \
        --inh-caps=-all --bounding-set=-all --no-new-privs lightbox "$@"
fi
exec lightbox "$@"
