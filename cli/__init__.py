"""``maec``: the command-line toolkit, a thin layer of argument parsing over the packages below.
Nothing in the project imports it."""
