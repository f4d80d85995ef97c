# Sourced by bin/demo and bin/test: a virtualenv with Vuoro in it, made on first use.
# Usage: bootstrap EXTRA[,EXTRA...]   pyproject's extras: all (every role: the one-box hall of bin/demo), dev (the
# test tools, with all for bin/test), or single roles (ui, kiosk, display...). Every use installs the mosquitto
# binary: `vuoro server` and `vuoro demo` run their own private Mosquitto; a role with windows also gets the
# Debian packages Kivy and the spoken calls need.
set -euo pipefail
VUORO_ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
VENV="${VUORO_VENV:-$VUORO_ROOT/.venv}"

_as_root() {
    if [ "$(id -u)" = 0 ]; then "$@"; elif command -v sudo >/dev/null; then sudo "$@"; else
        echo "vuoro: need root to run: $*" >&2; return 1; fi
}

_apt_install() {
    command -v apt-get >/dev/null || { echo "vuoro: please install: $*" >&2; return 1; }
    echo "vuoro: installing Debian packages: $*" >&2
    _as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends "$@" >/dev/null \
        || { _as_root apt-get update -q >/dev/null && \
             _as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends "$@" >/dev/null; }
}

_python() {
    for candidate in python3.13 python3.12 python3.11 python3; do
        if command -v "$candidate" >/dev/null && "$candidate" -c 'import sys; sys.exit(sys.version_info < (3, 11))'; then
            echo "$candidate"; return 0
        fi
    done
    echo "vuoro: Python 3.11 or newer is needed" >&2; return 1
}

bootstrap() {
    local extra="${1:-}" py stamp want
    if [ ! -x "$VENV/bin/python" ]; then
        py="$(_python)"
        if ! "$py" -m venv "$VENV" 2>/dev/null; then
            rm -rf "$VENV"
            _apt_install python3-venv
            "$py" -m venv "$VENV"
        fi
        "$VENV/bin/python" -m pip install -q --upgrade pip >&2
    fi
    # the stamp holds the pyproject's hash and the extras installed with it: reinstall only when
    # pyproject changed or an extra is asked for that is not there yet
    stamp="$VENV/.vuoro-installed"
    hash="$(sha1sum < "$VUORO_ROOT/pyproject.toml" | cut -c1-12)"
    local have="" need="" e
    if [ -f "$stamp" ] && [ "$(head -n1 "$stamp")" = "$hash" ]; then have="$(sed -n 2p "$stamp")"; fi
    for e in ${extra//,/ }; do
        [[ ",$have," == *",$e,"* ]] || need="yes"
    done
    if [ ! -f "$stamp" ] || [ "$(head -n1 "$stamp")" != "$hash" ] || [ -n "$need" ]; then
        local all="$have"
        for e in ${extra//,/ }; do [[ ",$all," == *",$e,"* ]] || all="${all:+$all,}$e"; done
        echo "vuoro: installing Python packages into $VENV" >&2
        "$VENV/bin/python" -m pip install -q -e "$VUORO_ROOT${all:+[$all]}" >&2
        printf '%s\n%s\n' "$hash" "$all" > "$stamp"
    fi
    if ! command -v mosquitto >/dev/null && [ ! -x /usr/sbin/mosquitto ]; then
        # the hall's default broker (amqtt, the fallback without it, misroutes retained messages). The Debian
        # package also starts a system service on localhost:1883: harmless, a hall server then takes a free port
        if [[ "$extra" == *dev* ]]; then
            _apt_install mosquitto  # the tests run on it
        else
            _apt_install mosquitto || echo "vuoro: could not install mosquitto; the slower amqtt broker stands in" >&2
        fi
    fi
    if [[ ",$extra," == *,dev,* ]]; then
        _need_postgres  # the city's tests write into a real PostgreSQL (a fresh database per run, dropped after)
        _need_debs chromium chromium-driver  # tests/test_web_browser.py: the visitor's page in a real browser
        _need_debs stunnel4  # the city tests: a hall's bridge speaks TLS to the centre through stunnel (ops/bridge.py)
    fi
    if [[ ",$extra," =~ ,(all|ui|kiosk|counter|display), ]]; then
        # Kivy's windows (also SDL's offscreen driver in the tests) need Mesa's GL; mtdev for touch screens;
        # espeak-ng speaks the hall displays' calls (made offline, on the display)
        _need_debs libmtdev1 libgl1 libegl1 libgl1-mesa-dri espeak-ng
    fi
}

_need_debs() {
    local missing=() pkg
    command -v dpkg >/dev/null || return 0
    for pkg in "$@"; do
        dpkg -s "$pkg" >/dev/null 2>&1 || missing+=("$pkg")
    done
    [ ${#missing[@]} -eq 0 ] || _apt_install "${missing[@]}"
}

# A PostgreSQL on 127.0.0.1:5432 that user postgres reaches without a password, as the city tests expect
# ($VUORO_TEST_PG points them elsewhere): installed from Debian's packages and started where it is missing.
_need_postgres() {
    [ -n "${VUORO_TEST_PG:-}" ] && return 0
    if command -v pg_isready >/dev/null && pg_isready -q -h 127.0.0.1 -p 5432; then return 0; fi
    _need_debs postgresql
    local hba
    hba="$(ls /etc/postgresql/*/main/pg_hba.conf 2>/dev/null | head -n1)"
    if [ -n "$hba" ] && ! _as_root grep -q '^host all postgres 127.0.0.1/32 trust' "$hba"; then
        _as_root sed -i '1i host all postgres 127.0.0.1/32 trust' "$hba"
    fi
    if command -v pg_ctlcluster >/dev/null; then
        local version
        version="$(basename "$(dirname "$(dirname "$hba")")")"
        _as_root pg_ctlcluster "$version" main start 2>/dev/null || _as_root pg_ctlcluster "$version" main reload
    fi
    local i
    for i in $(seq 1 30); do pg_isready -q -h 127.0.0.1 -p 5432 && return 0; sleep 1; done
    echo "vuoro: PostgreSQL did not start on 127.0.0.1:5432 (the city tests need it; or set VUORO_TEST_PG)" >&2
    return 1
}
