"""Entry points (command line, later HTTP): parse, call the service, map errors in one place."""
