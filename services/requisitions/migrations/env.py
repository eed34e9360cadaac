from shared.db import run_migrations_from_env_py

run_migrations_from_env_py()
