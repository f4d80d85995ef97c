#!/bin/sh
# Runs a Vuoro device app (kiosk, counter or display) in the Raspberry Pi's desktop session, full
# screen, with the screen saver and screen blanking off, and starts it again whenever it stops:
# a crash, an update, or the hall server's host being down at boot (the app then exits with
# "hall not found" and is retried here). Started by vuoro-kiosk.desktop (XDG autostart, which the Pi's
# labwc and wayfire sessions both run); setup-pi.sh installs both as /opt/vuoro/vuoro-kiosk-session.sh.
#
#   vuoro-kiosk-session.sh [APP [ID]]      APP: kiosk (default), counter or display; ID: K1 ...
#
# Settings (environment, or /etc/vuoro/session.env as VAR=value lines):
#   VUORO=/opt/vuoro/.venv/bin/vuoro   VUORO_HALL=/etc/vuoro/hall.toml
#   VUORO_CREDENTIALS=/etc/vuoro/APP-ID.toml (the file `vuoro provision` made for this device)
set -u

[ -r /etc/vuoro/session.env ] && . /etc/vuoro/session.env
APP=${1:-${VUORO_APP:-kiosk}}
ID=${2:-${VUORO_ID:-K1}}
VUORO=${VUORO:-/opt/vuoro/.venv/bin/vuoro}
export VUORO_HALL="${VUORO_HALL:-/etc/vuoro/hall.toml}"
export VUORO_CREDENTIALS="${VUORO_CREDENTIALS:-/etc/vuoro/$APP-$ID.toml}"
export KIVY_HOME="${KIVY_HOME:-$HOME/.cache/vuoro-kivy}"
# No mouse pointer over the app, on Wayland and X11 alike (Kivy reads KCFG_<section>_<key>).
export KCFG_GRAPHICS_SHOW_CURSOR="${KCFG_GRAPHICS_SHOW_CURSOR:-0}"

# No screen saver, no blanking: on Wayland (labwc, the Bookworm desktop) raspi-config's "Screen Blanking: No"
# does it (setup-pi.sh runs `raspi-config nonint do_blanking 1`); on an X11 desktop xset does too.
if [ -z "${WAYLAND_DISPLAY:-}" ] && [ -n "${DISPLAY:-}" ] && command -v xset >/dev/null 2>&1; then
    xset s off s noblank -dpms || true
fi

log() {
    if command -v systemd-cat >/dev/null 2>&1; then
        echo "$*" | systemd-cat -t vuoro-session
    else
        echo "vuoro-session: $*" >&2
    fi
}

delay=2
while :; do
    started=$(date +%s)
    "$VUORO" "$APP" --id "$ID"
    code=$?
    ran=$(( $(date +%s) - started ))
    # A run that lasted a while resets the back-off; quick failures wait longer, up to a minute.
    if [ "$ran" -gt 60 ]; then delay=2; elif [ "$delay" -lt 60 ]; then delay=$((delay * 2)); fi
    log "$APP $ID stopped (exit $code after ${ran}s); starting again in ${delay}s"
    sleep "$delay"
done
