#!/usr/bin/env bash
# Build Hearth's CPU image and check it as an owner would: a piped terminal chat in a
# throwaway container (exit 0 after the last reply), then a detached container until its
# health check says healthy, then `hearth health` inside it. Needs Docker or Podman.
#
#   scripts/container-check.sh                      build hearth:cpu, then check it
#   IMAGE=hearth:cpu SKIP_BUILD=1 scripts/container-check.sh
#
# RUNTIME=docker|podman (default: whichever works); BUILD_OPTS adds to the build command
# (a proxy's CA, a local wheel folder: see README "Containers"); RUN_OPTS to each run.
# Exit status 0 when every step passed.
set -euo pipefail
cd "$(dirname "$0")/.."

IMAGE=${IMAGE:-hearth:cpu}
HEALTHY_WITHIN_S=${HEALTHY_WITHIN_S:-600}
read -r -a build_opts <<< "${BUILD_OPTS:-}"
# vLLM's processes share memory: 160 MiB at least, and Docker gives /dev/shm 64 MiB.
read -r -a run_opts <<< "--shm-size 1g ${RUN_OPTS:-}"
say() { echo "container-check: $*" >&2; }

runtime=${RUNTIME:-}
if [ -z "$runtime" ]; then
    for candidate in docker podman; do
        if command -v "$candidate" >/dev/null 2>&1 && "$candidate" info >/dev/null 2>&1; then
            runtime=$candidate; break
        fi
    done
fi
[ -n "$runtime" ] || { say "no working container runtime (docker info, podman info)"; exit 2; }
format=()
[ "$runtime" = podman ] && format=(--format docker)  # OCI images drop HEALTHCHECK

if [ "${SKIP_BUILD:-0}" != 1 ]; then
    say "building $IMAGE with $runtime"
    "$runtime" build "${format[@]}" "${build_opts[@]}" -t "$IMAGE" -f Dockerfile .
fi

say "a piped terminal chat"
chat=$(printf 'hello\n/status\n' | "$runtime" run -i --rm "${run_opts[@]}" "$IMAGE" run)
echo "$chat" | grep -q "model: demo" || { say "no /status reply in: $chat"; exit 1; }
say "answered: $(echo "$chat" | head -c 300 | tr '\n' ' ')"

name=hearth-check-$$
cleanup() { "$runtime" rm -f "$name" >/dev/null 2>&1 || true; }
trap cleanup EXIT
say "a detached container ($name) until healthy"
"$runtime" run -d -i --name "$name" "${run_opts[@]}" "$IMAGE" >/dev/null
deadline=$((SECONDS + HEALTHY_WITHIN_S))
while :; do
    if [ "$runtime" = podman ]; then  # no systemd timer here: run the check ourselves
        status=$("$runtime" healthcheck run "$name" >/dev/null 2>&1 && echo healthy || echo starting)
    else
        status=$("$runtime" inspect --format '{{.State.Health.Status}}' "$name")
    fi
    [ "$status" = healthy ] && break
    [ $SECONDS -lt $deadline ] || { say "not healthy within ${HEALTHY_WITHIN_S}s"; "$runtime" logs "$name" >&2; exit 1; }
    sleep 5
done
say "healthy after $((SECONDS - deadline + HEALTHY_WITHIN_S)) s; /readyz says: $("$runtime" exec "$name" hearth health)"
say "every check passed"
