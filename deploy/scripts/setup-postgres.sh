#!/bin/sh
# Creates Temporal's two PostgreSQL databases and brings their schemas to
# the version of the temporal-sql-tool that runs it (the admin-tools image
# of the same version as the server). Safe to run again: an existing
# database is kept, and update-schema applies only the missing versions,
# which is also how a server upgrade moves the schema forward.
#
# Environment: SQL_HOST, SQL_PORT, SQL_USER, SQL_PASSWORD (read by
# temporal-sql-tool itself), SCHEMA_DIR (default /etc/temporal/schema),
# DBNAME and VISIBILITY_DBNAME.
set -eu

: "${SQL_PLUGIN:=postgres12}"
: "${SQL_HOST:=postgresql}"
: "${SQL_PORT:=5432}"
: "${SCHEMA_DIR:=/etc/temporal/schema}"
: "${DBNAME:=temporal}"
: "${VISIBILITY_DBNAME:=temporal_visibility}"
export SQL_PLUGIN SQL_HOST SQL_PORT

setup() { # database, schema subdirectory
  echo "== $1"
  temporal-sql-tool --db "$1" create-database # keeps an existing database
  # Version 0.0 creates only the schema_version tables (IF NOT EXISTS),
  # so it changes nothing in a database already set up.
  temporal-sql-tool --db "$1" setup-schema -v 0.0
  temporal-sql-tool --db "$1" update-schema -d "$SCHEMA_DIR/postgresql/v12/$2/versioned"
}

setup "$DBNAME" temporal
setup "$VISIBILITY_DBNAME" visibility
echo "schema ready"
