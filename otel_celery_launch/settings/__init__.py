"""Settings: sources, model, validation and errors. Runs in the launcher only, never in the child."""
