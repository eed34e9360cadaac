#!/usr/bin/env bash
# Runs once, when the postgres container starts on an empty data directory
# (/docker-entrypoint-initdb.d). Creates the two login roles of the deployment:
#   p2p       may create databases: each service creates and migrates its own p2p_<service>
#   temporal  owns `temporal` and `temporal_visibility`; temporalio/auto-setup (SKIP_DB_CREATE)
#             only installs and upgrades their schemas
# Passwords come from the container environment (docker-compose.yml) and are passed to psql as
# variables, so no quoting of their content is needed here.
set -euo pipefail

: "${P2P_DB_PASSWORD:?P2P_DB_PASSWORD must be set}"
: "${TEMPORAL_DB_PASSWORD:?TEMPORAL_DB_PASSWORD must be set}"

psql -v ON_ERROR_STOP=1 \
     --username "${POSTGRES_USER:-postgres}" --dbname "${POSTGRES_DB:-postgres}" \
     -v p2p_password="$P2P_DB_PASSWORD" -v temporal_password="$TEMPORAL_DB_PASSWORD" <<'SQL'
CREATE ROLE p2p LOGIN CREATEDB PASSWORD :'p2p_password';
CREATE ROLE temporal LOGIN PASSWORD :'temporal_password';
CREATE DATABASE temporal OWNER temporal;
CREATE DATABASE temporal_visibility OWNER temporal;
SQL
