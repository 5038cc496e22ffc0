"""The pages, one router module per subject (each a module-level ``router``), listed in web/app.py ROUTERS."""
