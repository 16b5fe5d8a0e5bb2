"""Moesif's governance rules: block a call, or add headers to its response, by rule.

The rules come from ``GET /v1/rules`` and the app config (:mod:`apimon.sinks.moesif_config`, in
the background); :mod:`~apimon.governance.rules` parses them into an immutable snapshot,
:mod:`~apimon.governance.conditions` holds the regex conditions they share with sampling,
:mod:`~apimon.governance.fields` reads a request's fields before the app runs, and
:mod:`~apimon.governance.gate` is what the adapters ask.
"""
