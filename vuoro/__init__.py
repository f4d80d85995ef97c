"""The command line (`vuoro ...`: cli, cli_actions) and the demo hall (demo, demo_headless, demo_server):
the only package that imports all the others."""
