"""The peerwatch benchmark (issue 6 item 9): ``make bench`` / ``python -m bench``.

Measures, side by side in one run and with the machine's details: the chase sweep's
scaling with open items (in one Prefect flow run), its engine time and peak memory; one
Prefect task per item versus the batched sweep; engine writes versus raw SQLite; and the
CLI as whole processes. ``python -m bench --write-results`` regenerates ``RESULTS.md``.
Not part of the test suite.
"""
