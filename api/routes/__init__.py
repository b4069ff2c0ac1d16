"""The /v1 endpoints, one module per area; each names its operation in api.auth.PERMISSIONS."""
