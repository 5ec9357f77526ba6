# What the launch scripts share (sourced by them, not run): their arguments, usage line and dry run.

# parse_args USAGE ARG...: DRY_RUN from the environment or --dry-run; the other arguments in the array `args`
# (passed on to mlrelabel.main); without any, prints "usage: USAGE" and exits 2.
parse_args() {
  local usage=$1
  shift
  DRY_RUN=${DRY_RUN:-0}
  args=()
  for a in "$@"; do
    if [[ "$a" == "--dry-run" ]]; then DRY_RUN=1; else args+=("$a"); fi
  done
  if [[ ${#args[@]} -eq 0 ]]; then
    echo "usage: $usage" >&2
    exit 2
  fi
}

# run_or_print CMD...: a dry run prints CMD quoted as the shell reads it and stops; otherwise CMD replaces
# this shell.
run_or_print() {
  if [[ "$DRY_RUN" == "1" ]]; then
    printf '%q ' "$@"
    echo
    exit 0
  fi
  exec "$@"
}
