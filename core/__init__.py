"""What every layer needs and no layer owns: the user-error base (:mod:`core.errors`) and safe file
writes (:mod:`core.files`). Imports nothing of the project and no heavy library (no torch)."""
