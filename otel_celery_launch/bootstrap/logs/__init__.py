"""Logs: trace ids on every record and structlog event (:mod:`.ids`), the launcher's look of the lines it
formats (:mod:`.format`), and what the bootstrap changes in the process's logging (:mod:`.setup`)."""
