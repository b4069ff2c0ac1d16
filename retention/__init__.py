"""The service layer: one function per use case, called by the CLI, the API and the scheduler."""
