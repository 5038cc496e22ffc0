"""Who is told: letters rendered from Jinja templates into the outbox, and sent once.

- ``outbox``: writes messages in the caller's transaction, addressed by contact role.
- ``render``: templates to subject, plain text and HTML; no queries.
- ``transports``: SMTP, a folder of .eml files (default), and an in-memory double for tests.
- ``dispatch``: drains the outbox; letters one per item, reminders and chases one digest per person.
"""
