"""What the three windows share: Kivy set-up, fonts and colours (kivy_env), translations (i18n), the message
type the pure models return (messages), shaped and fitted text for every script (kivy_text, text_shaping,
text_fit), and the controllers' device loop. May import broker (the protocol's vocabulary) and Kivy;
never a device package (kiosk, counter, display)."""
