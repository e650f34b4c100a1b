#!/bin/sh
# The container's entry point: `indextts2 serve ARGS` (the image's CMD: the server), or
# `keys add|list|rm ...` to manage its API keys: docker compose run --rm indextts2 keys add NAME
# A server told to use a keys file that does not exist yet says, in the log, how to create the first
# key, and stops (exit 78, EX_CONFIG) instead of serving a GPU that no request could use.
set -eu

if [ "${1:-}" = "keys" ]; then
    exec indextts2 serve "$@"
fi

keys_file=""
previous=""
for argument in "$@"; do
    if [ "$previous" = "--api-keys-file" ]; then
        keys_file="$argument"
    fi
    case "$argument" in
        --api-keys-file=*) keys_file="${argument#--api-keys-file=}" ;;
    esac
    previous="$argument"
done

if [ -n "$keys_file" ] && [ ! -f "$keys_file" ]; then
    cat >&2 <<MESSAGE
indextts2: there is no API key yet ($keys_file does not exist), so the server does not start.
Create the first key (it is printed once; keep it):

    docker compose run --rm indextts2 keys add NAME

then start the server again: docker compose up -d
MESSAGE
    exit 78
fi

exec indextts2 serve "$@"
