#!/bin/sh
# The release bot for any CI: for each provider stack folder given, move it onto the newest
# base release the policy allows and open (or update) its pull request. docs/release-bot.md.
#
#   deploy/release-bot/release-bot.sh stacks/openstack stacks/hetzner stacks/docker
#
# Environment:
#   KAAS_BASE_REPOSITORY   OCI repository of the base stack's releases (required)
#   KAAS_FORGE_TOKEN       the forge's token (required; never printed)
#   KAAS_FORGE_REPOSITORY  owner/name on the forge (required)
#   KAAS_FORGE_API         the forge's API (default https://api.github.com)
#   KAAS_FORGE             github or gitea (default github)
#   KAAS_WITHIN            patch, minor or any (default patch)
#   KAAS_GIT_BASE          the branch updates start from and merge into (default main)
#   KAAS_GIT_REMOTE        the git remote to push to (default origin)
#   KAAS_PLAIN_HTTP        set to speak plain HTTP to the registry (development only)
#   KAASCTL                the kaasctl binary (default: kaasctl on PATH)
#
# Exit 0 when every folder is up to date or has its pull request (a release that fails its
# compliance check gets a pull request marked failed, not a failed job); 1 when a step failed.
set -eu

: "${KAAS_BASE_REPOSITORY:?the OCI repository of the base releases}"
: "${KAAS_FORGE_TOKEN:?the forge token}"
: "${KAAS_FORGE_REPOSITORY:?owner/name on the forge}"
KAAS_FORGE_API=${KAAS_FORGE_API:-https://api.github.com}
KAAS_FORGE=${KAAS_FORGE:-github}
KAAS_WITHIN=${KAAS_WITHIN:-patch}
KAAS_GIT_BASE=${KAAS_GIT_BASE:-main}
KAAS_GIT_REMOTE=${KAAS_GIT_REMOTE:-origin}
KAASCTL=${KAASCTL:-kaasctl}
plain=""
if [ -n "${KAAS_PLAIN_HTTP:-}" ]; then plain="--plain-http"; fi

failed=0
for dir in "$@"; do
    echo "== $dir"
    git -C "$dir" checkout -q "$KAAS_GIT_BASE"
    summary=$(mktemp)
    rc=0
    # shellcheck disable=SC2086 # $plain is one flag or nothing
    "$KAASCTL" stack update "$dir" --base-repository "$KAAS_BASE_REPOSITORY" \
        --within "$KAAS_WITHIN" --summary "$summary" $plain || rc=$?
    case $rc in
        0 | 2) ;;
        *) echo "$dir: stack update failed" >&2; failed=1; rm -f "$summary"; continue ;;
    esac
    # Nothing to do writes no summary.
    if [ -s "$summary" ]; then
        if ! "$KAASCTL" stack pr "$dir" --summary "$summary" \
            --repository "$KAAS_FORGE_REPOSITORY" --api-url "$KAAS_FORGE_API" \
            --forge "$KAAS_FORGE" --remote "$KAAS_GIT_REMOTE" --base "$KAAS_GIT_BASE"; then
            echo "$dir: stack pr failed" >&2
            failed=1
        fi
        if [ "$rc" = 2 ]; then echo "$dir: the new release is not compliant (see its pull request)"; fi
    fi
    rm -f "$summary"
    git -C "$dir" checkout -q "$KAAS_GIT_BASE"
done
exit "$failed"
