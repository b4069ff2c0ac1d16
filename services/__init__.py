"""The service layer: one function per use case a person (or the library system) asks for.

Imports, tenants and users, data-subject requests, exceptions, holds, proposals, the Art. 15 copy, questions
about one reader, the policy's source and diff, the schedule, the configuration. The CLI, the HTTP API and the
scheduler call these; the nightly job itself lives in kodex.retention.
"""
