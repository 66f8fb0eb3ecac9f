"""The papers' experiments: which runs a config evaluates, and the tables and studies built from them."""
