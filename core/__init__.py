"""What every layer needs and no layer owns: the user-error base, safe file writes, machine facts.
Imports nothing of the project and no heavy library (no torch)."""
