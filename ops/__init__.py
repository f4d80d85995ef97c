"""Operations: setting up a hall's broker accounts and certificates (provision, provision_cli), the
devices' credentials files (credentials), the bridge to a city's central broker (bridge) and `vuoro doctor`
(doctor). May import broker only; never a device, analytics or the CLI."""
