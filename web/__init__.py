"""The web application for network staff (issue 15): pages and /api/v1 over the same use cases."""
