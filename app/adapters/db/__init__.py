"""The report store on SQLAlchemy."""
