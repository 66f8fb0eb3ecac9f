"""What a person reads: tables, figures and their labels."""
