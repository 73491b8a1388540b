"""placeholder until its issue lands."""
commands: list = []
