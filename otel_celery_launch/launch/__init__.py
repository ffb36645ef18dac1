"""Launch: find the command, prepare its environment, and become it."""
