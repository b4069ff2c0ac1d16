"""The nightly job: plan (evaluate the subjects due) and apply, in batches, one run per library at a time.

run (the job), subjects (what a run sees of each subject), strategies (one per action, in one registry),
review (each subject's next review date), locking, recordings (deleting a purged recording's file).
It writes no SQL: its statements are kodex.store.repositories' (runs, sweep, batches, writes); it keeps the
transactions (one batch = one transaction with its actions, decisions and log entries).
"""
