# Progress lines for scripts/setup (sourced): each step with the time since the start, and a line
# every ALIVE_EVERY seconds (default 30) while a long, quiet command (pip building llama.cpp) runs.
START=${START:-$SECONDS}

since() { local s=$((SECONDS - START)); printf '%dm%02ds' $((s / 60)) $((s % 60)); }

step() { printf '\n== [%s] %s\n' "$(since)" "$*"; }

# alive WHAT CMD...: run CMD, say every ALIVE_EVERY s that WHAT still runs; CMD's exit status is returned
alive() {
  local what=$1 every=${ALIVE_EVERY:-30} t0=$SECONDS pid next
  shift
  "$@" &
  pid=$!
  # a background job of a script ignores Ctrl-C: stop it with the script
  trap 'kill "$pid" 2>/dev/null; exit 130' INT TERM
  next=$((t0 + every))
  while kill -0 "$pid" 2>/dev/null; do
    sleep 1
    if ((SECONDS >= next)) && kill -0 "$pid" 2>/dev/null; then
      printf '   %s: still running, %ss so far (total %s)\n' "$what" $((SECONDS - t0)) "$(since)"
      next=$((next + every))
    fi
  done
  trap - INT TERM
  wait "$pid"
}
