# shellcheck shell=bash
# The one reader of /etc/nitro-enclave-demo/demo.env for bash (bootstrap.sh, nitro-demo.sh include this file;
# it is code from the host files, never configuration). demo.env is data: it is read line by line and never
# evaluated as shell. Each non-comment line must be KEY=VALUE with KEY one of demo-env.patterns' keys, given
# once, and VALUE matching that key's pattern whole; every key must be there. Each valid value is set and
# exported as it is read (so a caller can still signal with the valid ones); any problem makes
# demo_env_read return 1 with DEMO_ENV_ERROR naming the line and the key (never echoing a value) and
# DEMO_ENV_KEY the first problem's key ("demo.env" when the line has none).

DEMO_ENV_ERROR=""
DEMO_ENV_KEY=""

# demo_env_read FILE PATTERNS
demo_env_read() {
  local file="$1" patterns_file="$2" line key value number=0
  local -A pattern=() seen=()
  local -a problems=()
  DEMO_ENV_KEY=""
  while IFS=$'\t' read -r key value || [[ -n "$key" ]]; do
    [[ -z "$key" || "$key" == \#* ]] && continue
    pattern["$key"]="$value"
  done <"$patterns_file"
  while IFS= read -r line || [[ -n "$line" ]]; do
    number=$((number + 1))
    [[ -z "$line" || "$line" == \#* ]] && continue
    key="${line%%=*}"
    value="${line#*=}"
    # The key's form first: only then may it index an array (bash expands some subscripts once more).
    if [[ "$line" != *=* || ! "$key" =~ ^[A-Z][A-Z0-9_]{0,63}$ ]]; then
      _demo_env_problem demo.env "line $number: not KEY=VALUE"
    elif [[ ! -v "pattern[$key]" ]]; then
      _demo_env_problem "$key" "line $number: unknown key $key"
    elif [[ -v "seen[$key]" ]]; then
      _demo_env_problem "$key" "line $number: $key given twice"
    else
      seen["$key"]=1
      if [[ "$value" =~ ^(${pattern[$key]})$ ]]; then
        printf -v "$key" '%s' "$value"
        export "${key?}"
      else
        _demo_env_problem "$key" "line $number: $key is not of its form (demo-env.patterns)"
      fi
    fi
  done <"$file"
  for key in "${!pattern[@]}"; do
    [[ -v "seen[$key]" ]] || _demo_env_problem "$key" "$key is missing"
  done
  ((${#problems[@]} == 0)) && return 0
  DEMO_ENV_ERROR="$file: ${problems[0]}"
  ((${#problems[@]} == 1)) || DEMO_ENV_ERROR+="; and $(printf '%s; ' "${problems[@]:1}")"
  return 1
}

# Called only from demo_env_read, whose `problems` it appends to (bash's dynamic scope).
_demo_env_problem() {
  problems+=("$2")
  DEMO_ENV_KEY="${DEMO_ENV_KEY:-$1}"
}
