"""Who is told, rendered and sent: uses ``models/`` only, never ``states/`` (import-linter).

What a letter says and to whom are rules, decided in the transition and frozen on the outbox
row (``states/engine/letters.py``); this package renders what was frozen and sends it once.
It takes "now" and its settings as arguments and raises its own errors (``errors``).

- ``render``: templates to subject, plain text and HTML; ``thaw`` and ``rendered`` for a frozen letter.
- ``attachments``: the report PDF (``documents``) and the Appendix 2 workbook (``spreadsheets``),
  rendered at dispatch from the data the transition stored.
- ``build``: the email for a letter or a digest, every header checked.
- ``transports``: SMTP, a folder of .eml files (default), and an in-memory double for tests.
- ``dispatch``: drains the outbox; letters one per item, reminders and chases one digest per person.
- ``ics`` and ``dashboard``: the calendar feeds and the dashboard pages, from read-model data
  (``states/views/feeds.py``, ``states/views/dashboard.py``) that ``flows/site.py`` passes in.
"""
