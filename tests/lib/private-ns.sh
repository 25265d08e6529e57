# shellcheck shell=bash
# enter_private_namespace SKIP-REASON ARGS...: for the privileged suites.
# Skips the script (TAP "1..0 # SKIP") unless root, then re-executes it once
# (with ARGS) in a private mount namespace with a private tmpfs on /run, so
# no test mount leaks to the host and no event reaches the host's journal or
# a host /run/stagehand.  Refuses to go on if unshare did not really give a
# new namespace.  Needs bail (tests/lib/tap.sh).
enter_private_namespace() {
  local reason=$1
  shift
  if [ "$(id -u)" -ne 0 ]; then
    echo "1..0 # SKIP $reason"
    exit 0
  fi
  # The marker holds the namespace we came from: re-execute exactly once.
  if [ -z "${STAGEHAND_TEST_PARENT_MNTNS:-}" ]; then
    command -v unshare >/dev/null || bail "unshare (util-linux) is not installed"
    STAGEHAND_TEST_PARENT_MNTNS=$(readlink /proc/self/ns/mnt)
    export STAGEHAND_TEST_PARENT_MNTNS
    # shellcheck disable=SC2093 # the bail below runs only if exec fails
    exec unshare --mount --propagation private -- "$BASH" "$(readlink -f "$0")" "$@"
    bail "could not re-execute in a private mount namespace"
  fi
  [ "$(readlink /proc/self/ns/mnt)" != "$STAGEHAND_TEST_PARENT_MNTNS" ] ||
    bail "still in the parent mount namespace; refusing to mount anything"
  mount -t tmpfs -o mode=0755,size=16m stagehand-test-run /run ||
    bail "cannot mount a private tmpfs on /run"
}
