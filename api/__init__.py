"""Entry points (command line and HTTP): parse, call the service, map errors in one place."""
