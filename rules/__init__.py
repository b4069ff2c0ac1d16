"""Rules as code: the policy language, its strict loader and the native evaluator.

Pure: facts and `as_of` in, decisions out. Nothing here reads the clock, a
database or any file other than the policy text it is handed.
"""
