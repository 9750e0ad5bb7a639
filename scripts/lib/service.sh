# shellcheck shell=bash
# The stop and status steps shared by scripts/keycloak.sh and scripts/hydra.sh
# (sourced). The sourcing script defines log, our_pid (prints the pid of its
# running service, or fails), rss_of PID and token_ok, and sets PID_FILE,
# TOKEN_URL and STOP_TIMEOUT.

# svc_stop NAME [PID...]: SIGTERM the service, wait up to STOP_TIMEOUT
# seconds for it to go, then SIGKILL it and the extra PIDs (its children);
# removes the pidfile. A pidfile naming no running service is removed.
# Returns 1 when nothing was running (the caller has nothing more to do).
svc_stop() {
  local name="$1" pid
  shift
  if ! pid="$(our_pid)"; then
    if [[ -f "$PID_FILE" ]]; then
      log "pidfile $PID_FILE names no running $name; removing it"
      rm -f "$PID_FILE"
    else
      log "not running (no pidfile)"
    fi
    return 1
  fi
  log "stopping $name (pid $pid, RSS $(rss_of "$pid"))"
  kill -TERM "$pid" 2>/dev/null || true
  SVC_STOP_T0=$SECONDS
  while our_pid >/dev/null; do
    if ((SECONDS - SVC_STOP_T0 >= STOP_TIMEOUT)); then
      log "still alive after ${STOP_TIMEOUT} s; SIGKILL"
      kill -KILL "$pid" "$@" 2>/dev/null || true
      break
    fi
    sleep 0.2
  done
  rm -f "$PID_FILE"
}

# svc_status: exit status 0 when the token endpoint answers, 3 otherwise,
# with one line saying which.
svc_status() {
  local pid running=""
  if pid="$(our_pid)"; then
    running="pid $pid, RSS $(rss_of "$pid")"
  fi
  if token_ok; then
    echo "answering at $TOKEN_URL${running:+ ($running)}"
    return 0
  fi
  if [[ -n "$running" ]]; then
    echo "running ($running) but the token endpoint does not answer"
  else
    echo "not running"
  fi
  return 3
}
