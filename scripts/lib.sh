# Shared by scripts/test and scripts/bench: install what is missing, fetch dependencies, configure and build.
# Environment: BUILD_DIR (default build/), FLASHMLA_CUDA (AUTO|ON|OFF, default AUTO), JOBS (default: all cores).

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
BUILD_DIR=${BUILD_DIR:-$root/build}
FLASHMLA_CUDA=${FLASHMLA_CUDA:-AUTO}
JOBS=${JOBS:-$(nproc 2>/dev/null || echo 2)}

log() { echo "[flashmla] $*"; }

# Debian/Ubuntu packages for the build tools, installed only when a tool is missing.
ensure_tools() {
  local missing=()
  command -v cmake >/dev/null || missing+=(cmake)
  command -v ninja >/dev/null || missing+=(ninja-build)
  command -v c++ >/dev/null || missing+=(g++)
  command -v python3 >/dev/null || missing+=(python3)
  python3 -m pip --version >/dev/null 2>&1 || missing+=(python3-pip)
  if ((${#missing[@]})); then
    if command -v apt-get >/dev/null && [[ $(id -u) == 0 ]]; then
      log "installing ${missing[*]}"
      DEBIAN_FRONTEND=noninteractive apt-get update -qq
      DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >/dev/null
    else
      echo "[flashmla] ERROR: missing ${missing[*]}; install them (Debian: apt-get install ${missing[*]})" >&2
      exit 1
    fi
  fi
}

fetch_deps() { "$root/scripts/fetch-deps"; }

configure_and_build() {
  local gen=()
  command -v ninja >/dev/null && gen=(-G Ninja)
  cmake -S "$root" -B "$BUILD_DIR" "${gen[@]}" -DCMAKE_BUILD_TYPE=Release -DFLASHMLA_CUDA="$FLASHMLA_CUDA" >"$BUILD_DIR/configure.log" 2>&1 || {
    cat "$BUILD_DIR/configure.log" >&2
    exit 1
  }
  grep -E "^-- flashmla" "$BUILD_DIR/configure.log" || true
  log "building with $JOBS jobs in $BUILD_DIR"
  cmake --build "$BUILD_DIR" -j "$JOBS"
}

setup() {
  ensure_tools
  fetch_deps
  mkdir -p "$BUILD_DIR"
  configure_and_build
}
