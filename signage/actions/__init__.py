"""Use cases shared by the console, the JSON API and the CLI: what a change to a display, an
announcement or a plan does, apart from how it was asked for."""
