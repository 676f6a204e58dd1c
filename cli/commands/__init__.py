"""One module per maec command."""
