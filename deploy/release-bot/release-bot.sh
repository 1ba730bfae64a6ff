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
#   KAAS_BASE_SIGNING_KEY  PEM public key the base releases must be signed with (an unsigned
#                          or otherwise signed base stops the update of that folder)
#   KAASCTL                the kaasctl binary (default: kaasctl on PATH)
#
# Optional, the e2e run and the release (docs/release-bot.md):
#   KAAS_CANDIDATE_REPOSITORY  OCI repository for candidates: set it to run `stack e2e` on the
#                              management cluster KUBECONFIG names and post its result
#   KAAS_CANDIDATE_KEY         PEM key candidates are signed with (a CI key; optional)
#   KAAS_AUTO_MERGE            set to merge a compliant update whose e2e run passed, and release it
#   KAAS_RELEASE_REPOSITORY    OCI repository of the releases (required with KAAS_AUTO_MERGE)
#   KAAS_SIGNING_KEY           PEM key releases are signed with (required with KAAS_AUTO_MERGE)
#   KAAS_CHANNEL_TAG           the moving tag pushed with each release (default stable)
#   KAAS_REPORTS               folder for the JUnit files, <provider folder name>-e2e.xml (default .)
#
# Exit 0 when every folder is up to date or has its pull request (a release that fails its
# compliance check or its e2e run gets a pull request marked failed, not a failed job); 1 when
# a step itself could not run.
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
KAAS_CHANNEL_TAG=${KAAS_CHANNEL_TAG:-stable}
KAAS_REPORTS=${KAAS_REPORTS:-.}
if [ -n "${KAAS_AUTO_MERGE:-}" ]; then
    : "${KAAS_CANDIDATE_REPOSITORY:?KAAS_AUTO_MERGE needs an e2e run: set KAAS_CANDIDATE_REPOSITORY}"
    : "${KAAS_RELEASE_REPOSITORY:?the OCI repository of the releases}"
    : "${KAAS_SIGNING_KEY:?the release signing key}"
fi
plain=""
if [ -n "${KAAS_PLAIN_HTTP:-}" ]; then plain="--plain-http"; fi
base_key=""
if [ -n "${KAAS_BASE_SIGNING_KEY:-}" ]; then base_key="--base-signing-key=$KAAS_BASE_SIGNING_KEY"; fi

failed=0
for dir in "$@"; do
    echo "== $dir"
    git -C "$dir" checkout -q "$KAAS_GIT_BASE"
    summary=$(mktemp)
    rc=0
    # shellcheck disable=SC2086 # $plain and $base_key are one flag or nothing
    "$KAASCTL" stack update "$dir" --base-repository "$KAAS_BASE_REPOSITORY" \
        --within "$KAAS_WITHIN" --summary "$summary" $plain $base_key || rc=$?
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
        if [ "$rc" = 0 ] && [ -n "${KAAS_CANDIDATE_REPOSITORY:-}" ]; then
            e2e_summary=$(mktemp)
            key=""
            if [ -n "${KAAS_CANDIDATE_KEY:-}" ]; then key="--signing-key=$KAAS_CANDIDATE_KEY"; fi
            e2e_rc=0
            # shellcheck disable=SC2086 # $plain and $key are one flag or nothing
            "$KAASCTL" stack e2e "$dir" --candidate-repository "$KAAS_CANDIDATE_REPOSITORY" $key \
                --junit "$KAAS_REPORTS/$(basename "$dir")-e2e.xml" --summary "$e2e_summary" --report \
                --repository "$KAAS_FORGE_REPOSITORY" --api-url "$KAAS_FORGE_API" \
                --forge "$KAAS_FORGE" $plain || e2e_rc=$?
            case $e2e_rc in
                0)
                    if [ -n "${KAAS_AUTO_MERGE:-}" ]; then
                        # shellcheck disable=SC2086
                        if ! "$KAASCTL" stack release "$dir" --auto-merge --summary "$summary" \
                            --e2e-summary "$e2e_summary" --stack-repository "$KAAS_RELEASE_REPOSITORY" \
                            --signing-key "$KAAS_SIGNING_KEY" --channel-tag "$KAAS_CHANNEL_TAG" \
                            --repository "$KAAS_FORGE_REPOSITORY" --api-url "$KAAS_FORGE_API" \
                            --forge "$KAAS_FORGE" --remote "$KAAS_GIT_REMOTE" --base "$KAAS_GIT_BASE" $plain; then
                            echo "$dir: stack release failed" >&2
                            failed=1
                        fi
                    fi
                    ;;
                2) echo "$dir: the e2e run failed (see its pull request)" ;;
                *) echo "$dir: stack e2e could not run" >&2; failed=1 ;;
            esac
            rm -f "$e2e_summary"
        fi
    fi
    rm -f "$summary"
    git -C "$dir" checkout -q "$KAAS_GIT_BASE"
done
exit "$failed"
