"""Figures from the event log: the report and its charts (report, report_cli), the simulator and the
staffing planner (simulate, simulate_cli, dayrunner, demand, staffing, erlang, scenario). May import
broker (engine, config, protocol, stats) only; never a device, ops or the CLI."""
