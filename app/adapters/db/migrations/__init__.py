"""Alembic migrations, shipped inside the app so an installed copy can bring its database up.

`schema.py` runs them at start and for `python -m app db upgrade`. To change the schema, edit
`tables.py` and add a revision under `versions/` whose `down_revision` is the current head;
`tests/store/test_schema.py` fails until the migrations build exactly what `tables.py` says.
"""
