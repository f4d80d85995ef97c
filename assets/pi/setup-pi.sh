#!/bin/sh
# Make a Raspberry Pi (Raspberry Pi OS Bookworm, 64-bit) a Vuoro kiosk, counter panel or hall display.
#
#   sudo sh setup-pi.sh ROLE ID [desktop|console] [PACKAGE]
#     ROLE     kiosk, counter or display;  ID  the device id from the hall file (K1, 3, entrance)
#     desktop  (default) the Wayland desktop (labwc) logs in by itself and starts the app full screen
#     console  no desktop: a systemd unit draws the app straight on the screen (KMS/DRM)
#     PACKAGE  what pip installs (default: vuoro; e.g. ./vuoro-0.1.0-py3-none-any.whl)
#
# It installs the Debian packages, a venv in /opt/vuoro/.venv (Bookworm's Python is "externally managed": pip
# only installs into a venv) with the role's extra, the groups, and the autostart or the unit. Then: copy the
# hall file and this device's credentials to /etc/vuoro/ (README, "Setting up a real hall"), and reboot.
set -eu

ROLE=${1:?usage: setup-pi.sh ROLE ID [desktop|console] [PACKAGE]}
ID=${2:?usage: setup-pi.sh ROLE ID [desktop|console] [PACKAGE]}
MODE=${3:-desktop}
PACKAGE=${4:-vuoro}
VENV=${VENV:-/opt/vuoro/.venv}
case "$ROLE" in kiosk|counter|display) ;; *) echo "ROLE must be kiosk, counter or display" >&2; exit 2 ;; esac
case "$MODE" in desktop|console) ;; *) echo "the mode must be desktop or console" >&2; exit 2 ;; esac
[ "$(id -u)" = 0 ] || { echo "run it with sudo" >&2; exit 2; }

# Kivy's GL and touch libraries; a display speaks its calls with espeak-ng
debs="python3-venv libgl1 libegl1 libgles2 libmtdev1"
[ "$ROLE" = display ] && debs="$debs espeak-ng"
# shellcheck disable=SC2086
apt-get install -y --no-install-recommends $debs

extra=$ROLE
[ "$ROLE" = kiosk ] && extra="kiosk,usb"
python3 -m venv "$VENV"
"$VENV/bin/pip" install --upgrade "$PACKAGE[$extra]"
SHARE=$("$VENV/bin/python" -c 'import assets; print(assets.path())')
install -d -m 755 /etc/vuoro

groups="video,render,input"
[ "$ROLE" = kiosk ] && groups="$groups,lp,dialout"
[ "$ROLE" = display ] && groups="$groups,audio"
if [ "$ROLE" = kiosk ]; then
    install -m 644 "$SHARE/pi/99-vuoro-printer.rules" /etc/udev/rules.d/99-vuoro-printer.rules
    echo "USB printer: put its ids (lsusb) into /etc/udev/rules.d/99-vuoro-printer.rules, then" \
         "sudo udevadm control --reload && sudo udevadm trigger"
fi

if [ "$MODE" = desktop ]; then
    USER_NAME=${SUDO_USER:-$(id -un 1000)}
    HOME_DIR=$(getent passwd "$USER_NAME" | cut -d: -f6)
    usermod -aG "$groups" "$USER_NAME"
    raspi-config nonint do_boot_behaviour B4   # the desktop, logged in automatically
    raspi-config nonint do_wayland W3 2>/dev/null || true   # labwc, the Bookworm default since late 2024
    raspi-config nonint do_blanking 1          # never blank the screen
    install -m 755 "$SHARE/pi/vuoro-kiosk-session.sh" /opt/vuoro/vuoro-kiosk-session.sh
    install -d -o "$USER_NAME" "$HOME_DIR/.config/autostart"
    sed "s|kiosk K1|$ROLE $ID|; s|Name=Vuoro kiosk|Name=Vuoro $ROLE $ID|" "$SHARE/pi/vuoro-kiosk.desktop" \
        > "$HOME_DIR/.config/autostart/vuoro.desktop"
    chown "$USER_NAME" "$HOME_DIR/.config/autostart/vuoro.desktop"
    printf 'VUORO=%s/bin/vuoro\n' "$VENV" > /etc/vuoro/session.env
    who=$USER_NAME
else
    id vuoro >/dev/null 2>&1 || useradd --system --home /var/lib/vuoro --shell /usr/sbin/nologin vuoro
    usermod -aG "$groups" vuoro
    raspi-config nonint do_boot_behaviour B1   # the console: multi-user.target, where the unit is wanted
    grep -q consoleblank= /boot/firmware/cmdline.txt || sed -i '1 s/$/ consoleblank=0/' /boot/firmware/cmdline.txt
    sed "s|/opt/vuoro/.venv/bin/|$VENV/bin/|" "$SHARE/systemd/vuoro-$ROLE@.service" \
        > "/etc/systemd/system/vuoro-$ROLE@.service"
    systemctl daemon-reload
    systemctl enable "vuoro-$ROLE@$ID"
    who=vuoro
fi

echo "Done. Now copy to /etc/vuoro/: hall.toml, $ROLE-$ID.toml (chmod 600, owned by $who) and ca.crt; then"
echo "  sudo -u $who $VENV/bin/vuoro doctor --credentials /etc/vuoro/$ROLE-$ID.toml"
echo "The new groups ($groups) count from the next login: reboot now (sudo reboot)."
